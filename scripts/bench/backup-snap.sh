#!/usr/bin/env bash
# Benchmark: backup-snap against restic, borg and tar | zstd -3, in one run on this
# machine. Not a test: it prints medians and ratios for the README.
#
#   scripts/bench/backup-snap.sh [RUNS]        (default 3)
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
runs=${1:-3}
m=$PWD/scripts/bench/measure.py
for t in restic borg zstd python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "needs $t (apt-get install restic borgbackup zstd time)" >&2; exit 69; }
done

cargo build --release -q -p backup-snap
bs=$PWD/target/release/backup-snap
base=${BENCH_DIR:-/var/tmp}/backup-snap-bench
corpus=$base/corpus
pristine=$base/pristine
work=$base/work
mkdir -p "$base"
trap 'rm -rf "$work"' EXIT

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
