#!/usr/bin/env bash
# Benchmark: backup-snap against restic, borg and tar | zstd -3, in one run on this
# machine. Not a test: it prints medians and ratios for the README.
#
#   scripts/bench/backup-snap.sh [RUNS]        (default 3)
#   scripts/bench/backup-snap.sh --scale 10000,100000,1000000 [RUNS]   (default 1)
#
# The scale mode: for each file count N, a corpus of N small files (2-4 KiB of text
# each, in directories of 100 to 1,000 files, every fifth directory three levels
# deeper) plus the large files below (hard links, built once), under $BENCH_DIR or
# /var/tmp. For backup-snap and then restic, each in a new repository: backup 1; 1 %
# of the small files changed (a line appended); backup 2; verify --read-data (restic
# check --read-data); restore into an empty directory; forget of the older of the two
# snapshots (half) and prune. Per size and step: wall time, peak RSS and the ratios
# backup-snap / restic, and a TSV (size, tool, step, seconds, rss_kib) that
# scripts/bench/plot.sh turns into a PNG. Corpora, repositories and restores are
# deleted at the end ($KEEP=1 keeps the corpora). SCALE_TOOLS=backup-snap leaves
# restic out (to measure a change to backup-snap alone); SCALE_STEPS=backups measures
# the two backups only.
#
# The corpus (about 500 MiB, built once under $BENCH_DIR or /var/tmp): 2,000 small
# text files, seven 50 MiB semi-compressible binaries and a 100 MiB SQLite database.
# Each run, for each tool: a first backup into a new repository; then about 1 % of
# the data is changed in scattered places (64 KiB at 10 places in each binary, 1 %
# of the database's rows, 20 text files) and a second backup is taken; then
# verify --read-data (restic check --read-data, borg check --verify-data, zstd -t);
# then a restore into an empty directory; then a copy of both snapshots into a second,
# new repository (backup-snap copy --to against restic copy, the target encrypted
# with its own key when the source is; borg 1.2 and tar have no counterpart). The changed files are put back from a
# pristine copy before the next run. Wall time and peak RSS (GNU time) per step,
# repository growth (du) per backup.
#
# Needs restic and borgbackup (apt-get install restic borgbackup), zstd, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=
if [ "${1:-}" = --scale ]; then
  scale=${2:?--scale needs file counts, e.g. 10000,100000,1000000}
  shift 2
fi
runs=${1:-3}
[ -z "$scale" ] || runs=${1:-1}
m=$PWD/scripts/bench/measure.py
for t in restic borg zstd python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install restic borgbackup zstd time)" >&2; exit 69; }
done

# BACKUP_SNAP_BIN: measure that binary (e.g. a build from before a change) instead.
bs=${BACKUP_SNAP_BIN:-}
if [ -z "$bs" ]; then
  cargo build --release -q -p backup-snap
  bs=${CARGO_TARGET_DIR:-$PWD/target}/release/backup-snap
fi
base=${BENCH_DIR:-/var/tmp}/backup-snap-bench
corpus=$base/corpus
pristine=$base/pristine
work=$base/work
mkdir -p "$base"
trap 'rm -rf "$work"' EXIT
[ -z "$scale" ] || trap 'rm -rf "$work" "$base/scale-work"' EXIT

if [ ! -e "$base/corpus.done" ]; then
  rm -rf "$corpus" "$pristine"
  mkdir -p "$corpus/text" "$corpus/bin" "$corpus/db" "$pristine"
  python3 - "$corpus" <<'PY'
import os, random, sqlite3, sys
root = sys.argv[1]
r = random.Random(42)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 10))) for _ in range(5000)]
for i in range(2000):
    n = r.randint(500, 16000)
    line = lambda: b" ".join(r.choice(words) for _ in range(r.randint(5, 15))) + b"\n"
    out = bytearray()
    while len(out) < n:
        out += line()
    open(f"{root}/text/note-{i:04d}.txt", "wb").write(out)
# Semi-compressible: 64 KiB blocks, half random bytes and half text.
text = b" ".join(r.choice(words) for _ in range(200000))
for i in range(7):
    with open(f"{root}/bin/blob-{i}.bin", "wb") as f:
        for b in range(800):
            f.write(os.urandom(32768))
            off = r.randrange(0, len(text) - 32768)
            f.write(text[off:off + 32768])
db = sqlite3.connect(f"{root}/db/app.sqlite")
db.execute("create table items(id integer primary key, name text, body text, data blob)")
for i in range(100000):
    db.execute("insert into items(name, body, data) values (?, ?, ?)",
               (f"item {i}", b" ".join(r.choice(words) for _ in range(60)).decode(), os.urandom(400)))
db.commit()
db.execute("vacuum")
db.close()
PY
  cp -a "$corpus/bin" "$corpus/db" "$pristine/"
  mkdir -p "$pristine/text"; cp -a "$corpus"/text/note-00[0-1]?.txt "$pristine/text/"
  touch "$base/corpus.done"
fi

if [ -n "$scale" ]; then
  once() { python3 "$m" once -- "$@"; }
  export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$base/scale-work/restic-cache
  out=${SCALE_OUT:-$PWD/docs/bench}
  mkdir -p "$out"
  tsv=$out/backup-snap-scale.tsv
  printf 'size\ttool\tstep\tseconds\trss_kib\n' >"$tsv"
  for n in ${scale//,/ }; do
    sc=$base/scale-$n
    if [ ! -e "$sc.done" ]; then
      rm -rf "$sc"
      mkdir -p "$sc/large"
      cp -al "$corpus/bin" "$corpus/db" "$sc/large/"
      python3 - "$sc" "$n" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
r = random.Random(n)
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 10))) for _ in range(5000)]
text = b" ".join(r.choice(words) for _ in range(800000))
names = open(f"{root}.files", "w")
i = d = 0
while i < n:
    size = min(r.randint(100, 1000), n - i)
    rel = f"small/g{d // 30:03d}/d{d % 30:02d}" + ("/src/lib/v1" if d % 5 == 0 else "")
    os.makedirs(f"{root}/{rel}")
    for _ in range(size):
        p = f"{rel}/f{i:07d}.txt"
        off = r.randrange(0, len(text) - 4096)
        with open(f"{root}/{p}", "wb") as f:
            f.write(b"file %d\n" % i + text[off:off + r.randint(2048, 4096)])
        names.write(p + "\n")
        i += 1
    d += 1
PY
      touch "$sc.done"
    fi
    # change N SEED [undo]: append a line to 1 % of the small files (or take it off).
    scale_change() {
      python3 - "$sc" "$1" "${2:-}" <<'PY'
import os, random, sys
root, seed, undo = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "undo"
names = open(f"{root}.files").read().split()
line = b"changed line\n"
for p in random.Random(seed).sample(names, max(1, len(names) // 100)):
    path = f"{root}/{p}"
    if undo:
        os.truncate(path, os.path.getsize(path) - len(line))
    else:
        with open(path, "ab") as f:
            f.write(line)
PY
    }
    files=$(wc -l <"$sc.files")
    echo "size $n: $files small files, $(du -sh "$sc" | cut -f1) on disk; $(df -h --output=avail "$base" | tail -1) free; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    for run in $(seq "$runs"); do
      for tool in ${SCALE_TOOLS:-backup-snap restic}; do
        w=$base/scale-work
        rm -rf "$w"; mkdir -p "$w/restore"
        repo=$w/repo
        case $tool in
          backup-snap) "$bs" --repo "$repo" -q init
            b=(once "$bs" --repo "$repo" -q create --job bench "$sc")
            ver=(once "$bs" --repo "$repo" -q verify --read-data)
            res=(once "$bs" --repo "$repo" -q restore latest "$w/restore")
            prn=(once sh -c "'$bs' --repo '$repo' -q forget --keep-last 1 && '$bs' --repo '$repo' -q prune") ;;
          restic) restic -q -r "$repo" init >/dev/null
            b=(once restic -q -r "$repo" backup "$sc")
            ver=(once restic -q -r "$repo" check --read-data)
            res=(once restic -q -r "$repo" restore latest --target "$w/restore")
            prn=(once sh -c "restic -q -r '$repo' forget --keep-last 1 >/dev/null && restic -q -r '$repo' prune") ;;
        esac
        row() { # STEP JSON
          python3 -c 'import json,sys; a=sys.argv; r=json.loads(a[4]); print("%s\t%s\t%s\t%.3f\t%d" % (a[1], a[2], a[3], r["wall_ms"] / 1000, r["rss_kib"]))' \
            "$n" "$tool" "$1" "$2" >>"$tsv.$run"
        }
        row backup1 "$("${b[@]}")"
        scale_change 1
        row backup2 "$("${b[@]}")"
        if [ "${SCALE_STEPS:-all}" = all ]; then
          row verify "$("${ver[@]}")"
          row restore "$("${res[@]}")"
          rm -rf "$w/restore"
          row prune "$("${prn[@]}")"
        fi
        echo "size $n run $run $tool: repository $(du -sh "$repo" | cut -f1), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
        rm -rf "$w"
        scale_change 1 undo
      done
    done
    [ "${KEEP:-}" = 1 ] || rm -rf "$sc" "$sc.files" "$sc.done"
  done
  # The median of the runs per size, tool and step.
  python3 - "$tsv" "$runs" <<'PY'
import statistics, sys
tsv, runs = sys.argv[1], int(sys.argv[2])
rows = {}
for run in range(1, runs + 1):
    for l in open(f"{tsv}.{run}"):
        n, tool, step, sec, rss = l.split("\t")
        rows.setdefault((int(n), tool, step), []).append((float(sec), int(rss)))
with open(tsv, "a") as out:
    for (n, tool, step), v in rows.items():
        out.write(f"{n}\t{tool}\t{step}\t{statistics.median(s for s, _ in v):.3f}\t{int(statistics.median(r for _, r in v))}\n")
steps = ["backup1", "backup2", "verify", "restore", "prune"]
label = {"backup1": "backup 1", "backup2": "backup 2 (1 % changed)", "verify": "verify --read-data",
         "restore": "restore", "prune": "forget half + prune"}
print(f"{runs} run(s) per size, medians; ratio = backup-snap / restic")
print(f"{'files':>9} {'step':24} {'backup-snap s':>13} {'MiB':>7} {'restic s':>9} {'MiB':>7} {'wall ratio':>10} {'RSS ratio':>9}")
for n in sorted({k[0] for k in rows}):
    for s in steps:
        if (n, "backup-snap", s) not in rows:  # SCALE_STEPS=backups
            continue
        b = [statistics.median(x) for x in zip(*rows[(n, "backup-snap", s)])]
        if (n, "restic", s) not in rows:  # SCALE_TOOLS=backup-snap
            print(f"{n:>9} {label[s]:24} {b[0]:13.2f} {b[1]/1024:7.1f}")
            continue
        r = [statistics.median(x) for x in zip(*rows[(n, "restic", s)])]
        print(f"{n:>9} {label[s]:24} {b[0]:13.2f} {b[1]/1024:7.1f} {r[0]:9.2f} {r[1]/1024:7.1f} {b[0]/r[0]:10.3f} {b[1]/r[1]:9.3f}")
PY
  rm -f "$tsv".[0-9]*
  if command -v gnuplot >/dev/null; then
    # plot.sh's rows (size, tool, metric, value): a panel per step and measure.
    long=$(mktemp)
    awk -F'\t' 'NR > 1 { print $1 "\t" $2 "\t" $3 " wall s\t" $4
                          printf "%s\t%s\t%s peak RSS MiB\t%.1f\n", $1, $2, $3, $5 / 1024 }' "$tsv" >"$long"
    scripts/bench/plot.sh "$long" "$out/backup-snap-scale.png" "backup-snap against restic (files)"
    rm -f "$long"
    echo "plot: $out/backup-snap-scale.png" >&2
  fi
  exit 0
fi

change() {
  python3 - "$corpus" "$1" <<'PY'
import os, random, sqlite3, sys
root, seed = sys.argv[1], int(sys.argv[2])
r = random.Random(seed)
for i in range(7):
    p = f"{root}/bin/blob-{i}.bin"
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        for _ in range(10):
            f.seek(r.randrange(0, size - 65536))
            f.write(os.urandom(65536))
db = sqlite3.connect(f"{root}/db/app.sqlite")
for _ in range(1000):
    db.execute("update items set data = ? where id = ?", (os.urandom(400), r.randrange(1, 100001)))
db.commit()
db.close()
for i in range(0, 20):
    with open(f"{root}/text/note-{i:04d}.txt", "ab") as f:
        f.write(b"changed line\n")
PY
}

reset() {
  cp -a "$pristine/bin" "$pristine/db" "$corpus/"
  cp -a "$pristine"/text/*.txt "$corpus/text/"
}

size() { du -sb "$1" | cut -f1; }
once() { python3 "$m" once -- "$@"; }

export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
results=$base/results.jsonl
: >"$results"
key=$base/key
head -c 32 /dev/urandom >"$key"
key2=$base/key2
head -c 32 /dev/urandom >"$key2"

for run in $(seq "$runs"); do
  for tool in backup-snap backup-snap-enc restic borg tar-zstd; do
    rm -rf "$work"; mkdir -p "$work/restore"
    repo=$work/repo
    case $tool in
      backup-snap) "$bs" --repo "$repo" -q init
        b1=(once "$bs" --repo "$repo" -q create --job bench "$corpus"); b2=("${b1[@]}")
        ver=(once "$bs" --repo "$repo" -q verify --read-data)
        res=(once "$bs" --repo "$repo" -q restore latest "$work/restore")
        "$bs" --repo "$work/copy" -q init
        cpy=(once "$bs" --repo "$repo" -q copy --to "$work/copy") ;;
      backup-snap-enc) "$bs" --repo "$repo" --key-file "$key" -q init
        b1=(once "$bs" --repo "$repo" --key-file "$key" -q create --job bench "$corpus"); b2=("${b1[@]}")
        ver=(once "$bs" --repo "$repo" --key-file "$key" -q verify --read-data)
        res=(once "$bs" --repo "$repo" --key-file "$key" -q restore latest "$work/restore")
        "$bs" --repo "$work/copy" --key-file "$key2" -q init
        cpy=(once "$bs" --repo "$repo" --key-file "$key" -q copy --to "$work/copy" --to-key-file "$key2") ;;
      restic) restic -q -r "$repo" init >/dev/null
        b1=(once restic -q -r "$repo" backup "$corpus"); b2=("${b1[@]}")
        ver=(once restic -q -r "$repo" check --read-data)
        res=(once restic -q -r "$repo" restore latest --target "$work/restore")
        RESTIC_FROM_PASSWORD=bench restic -q -r "$work/copy" init --from-repo "$repo" --copy-chunker-params >/dev/null
        cpy=(once env RESTIC_FROM_PASSWORD=bench restic -q -r "$work/copy" copy --from-repo "$repo") ;;
      borg) borg init -e repokey "$repo"
        b1=(once borg create "$repo::first" "$corpus"); b2=(once borg create "$repo::second" "$corpus")
        ver=(once borg check --verify-data "$repo")
        res=(once sh -c "cd '$work/restore' && borg extract '$repo::second'"); cpy=() ;;
      tar-zstd) mkdir -p "$repo"
        b1=(once sh -c "tar -C / -cf - '${corpus#/}' | zstd -3 -q -c > '$repo/first.tar.zst'")
        b2=(once sh -c "tar -C / -cf - '${corpus#/}' | zstd -3 -q -c > '$repo/second.tar.zst'")
        ver=(once zstd -t -q "$repo/second.tar.zst")
        res=(once sh -c "zstd -dc '$repo/second.tar.zst' | tar -C '$work/restore' -xf -"); cpy=() ;;
    esac
    s0=$(size "$repo"); r1=$("${b1[@]}"); s1=$(size "$repo")
    change "$run"
    r2=$("${b2[@]}"); s2=$(size "$repo")
    rv=$("${ver[@]}"); rr=$("${res[@]}")
    rc=null; [ ${#cpy[@]} -eq 0 ] || rc=$("${cpy[@]}")
    reset
    printf '{"run":%s,"tool":"%s","first":%s,"second":%s,"verify":%s,"restore":%s,"copy":%s,"growth1":%s,"growth2":%s}\n' \
      "$run" "$tool" "$r1" "$r2" "$rv" "$rr" "$rc" $((s1 - s0)) $((s2 - s1)) >>"$results"
    echo "run $run $tool done" >&2
  done
done

python3 - "$results" "$(du -sb "$corpus" | cut -f1)" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
corpus = int(sys.argv[2])
tools = ["backup-snap", "backup-snap-enc", "restic", "borg", "tar-zstd"]
med = lambda t, k, f: statistics.median(r[k][f] if isinstance(r[k], dict) else r[k] for r in rows if r["tool"] == t)
print(f"corpus {corpus / 2**20:.0f} MiB, {len(rows) // len(tools)} runs, medians")
print(f"{'tool':16} {'first s':>8} {'MiB':>6} {'second s':>9} {'MiB':>6} {'grow1 MiB':>10} {'grow2 MiB':>10} {'verify s':>9} {'MiB':>6} {'restore s':>10} {'MiB':>6}")
for t in tools:
    print(f"{t:16} {med(t,'first','wall_ms')/1000:8.2f} {med(t,'first','rss_kib')/1024:6.1f} {med(t,'second','wall_ms')/1000:9.2f} {med(t,'second','rss_kib')/1024:6.1f} "
          f"{med(t,'growth1',None)/2**20:10.1f} {med(t,'growth2',None)/2**20:10.2f} {med(t,'verify','wall_ms')/1000:9.2f} {med(t,'verify','rss_kib')/1024:6.1f} "
          f"{med(t,'restore','wall_ms')/1000:10.2f} {med(t,'restore','rss_kib')/1024:6.1f}")
for t in ["backup-snap", "backup-snap-enc", "restic"]:
    print(f"{t:16} copy --to a new repository {med(t,'copy','wall_ms')/1000:8.2f} s {med(t,'copy','rss_kib')/1024:6.1f} MiB")
print("ratios backup-snap / restic (encrypted backup-snap in brackets):")
for k, f, label in [("first", "wall_ms", "first backup wall"), ("second", "wall_ms", "second backup wall"),
                    ("first", "rss_kib", "first backup peak RSS"), ("second", "rss_kib", "second backup peak RSS"),
                    ("growth2", None, "second backup repository growth"), ("verify", "wall_ms", "verify --read-data wall"),
                    ("restore", "wall_ms", "restore wall"), ("restore", "rss_kib", "restore peak RSS"),
                    ("copy", "wall_ms", "copy of both snapshots wall"), ("copy", "rss_kib", "copy peak RSS")]:
    r = med("restic", k, f)
    print(f"  {label:34} {med('backup-snap', k, f) / r:6.3f}  ({med('backup-snap-enc', k, f) / r:.3f})")
PY
