#!/usr/bin/env bash
# Benchmark: log-tail-ship against `tail -n +1 FILE | grep -v REGEX` on the same file,
# in one run on this machine: lines per second to --stdout and to a Loki stand-in
# (scripts/bench/loki-stand-in.py; Loki cannot be installed here), both with one drop
# regex; peak RSS; CPU of a follower over idle seconds. Not a test: it prints medians
# and ratios for the README.
#
# Then idle CPU and RSS of a follower of 1, 100 and 1,000 files (one directory, each
# with a rotated sibling), with and without --positions, once every file is read.
#
#   scripts/bench/log-tail-ship.sh [LINES] [RUNS] [IDLE_SECONDS] [IDLE_FILES_SECONDS]
#   (defaults 1000000, 5, 60, 20); LOGSHIP_BIN=path uses that binary instead of
#   building one. LOGSHIP_BEFORE_BIN=path (another build, e.g. of the commit before a
#   change) adds a before/after row: both binaries take turns on the same file, to
#   --stdout and to the stand-in, and the ratio after / before is printed.
#
#   scripts/bench/log-tail-ship.sh --scale 10,100,1000 [SECONDS]   (SECONDS default 30)
#
# --scale: for each N, N files in one directory, each appended 10 lines per second
# (by one writer, a tenth of the files every 10 ms), followed by log-tail-ship
# (--file 'DIR/*.log' to the Loki stand-in, with --positions) and, side by side, by
# `tail -q -F` on the same files into a null device node: each one's CPU (% of one
# core, from /proc over SECONDS once both have caught up) and peak RSS. tail only
# follows and prints; log-tail-ship also stamps, escapes, batches, gzips and pushes
# over HTTP. Writes docs/bench/log-tail-ship.tsv and plots docs/bench/log-tail-ship.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=
if [ "${1:-}" = --scale ]; then scale=${2:?--scale needs a list such as 10,100,1000}; shift 2; fi
lines=${1:-1000000}
runs=${2:-5}
idle=${3:-60}
idle_files=${4:-20}
m=scripts/bench/measure.py
regex='GET /health'

if [ -n "${LOGSHIP_BIN:-}" ]; then
  bin=$LOGSHIP_BIN
else
  cargo build --release -q -p log-tail-ship
  target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  bin=$target/release/log-tail-ship
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$scale" ]; then
  seconds=${1:-30}
  mkdir -p docs/bench
  tsv=docs/bench/log-tail-ship.tsv
  : >"$tsv"
  echo "log-tail-ship --scale $scale: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $seconds s per size; $(tail --version | head -1)"
  python3 scripts/bench/loki-stand-in.py "$work/port" & pids+=($!)
  for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
  url="http://127.0.0.1:$(cat "$work/port")"
  if mknod "$work/null" c 1 3 2>/dev/null && echo probe >"$work/null" 2>/dev/null; then sink=$work/null; else sink=/dev/null; fi
  for n in ${scale//,/ }; do
    d=$work/scale-$n
    mkdir -p "$d"
    for i in $(seq 1 "$n"); do : >"$d/f$i.log"; done
    # The writer: 10 lines per second to each file, a tenth of the files every 10 ms.
    python3 - "$d" "$n" "$((seconds + 20))" <<'WRITER' &
import os, sys, time
d, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fds = [os.open(f"{d}/f{i}.log", os.O_WRONLY | os.O_APPEND) for i in range(1, n + 1)]
start = time.monotonic()
k = 0
while time.monotonic() - start < secs:
    for i in range(k % 10, n, 10):
        os.write(fds[i], f'192.168.1.{i % 250} - - "GET /api/items/{k} HTTP/1.1" 200 {k % 5000} "-" "curl/8.5.0" file {i} line {k // 10}\n'.encode())
    k += 1
    time.sleep(max(0.0, start + k * 0.01 - time.monotonic()))
WRITER
    writer=$!; pids+=("$writer")
    "$bin" --file "$d/*.log" --loki "$url" --positions "$d.json" --quiet &
    follower=$!; pids+=("$follower")
    tail -q -n 0 -F "$d"/*.log >"$sink" &
    tailer=$!; pids+=("$tailer")
    sleep 5 # both have opened every file and caught up (the files are new and short)
    before=$(curl -fsS "$url/count")
    python3 $m cpu "$follower" "$seconds" >"$work/cpu-ours" &
    c1=$!
    python3 $m cpu "$tailer" "$seconds" >"$work/cpu-tail"
    wait "$c1"
    after=$(curl -fsS "$url/count")
    python3 - "$tsv" "$n" "$work/cpu-ours" "$work/cpu-tail" "$(python3 $m hwm "$follower")" "$(python3 $m hwm "$tailer")" "$before" "$after" <<'ROWS'
import json, sys
tsv, n = sys.argv[1], sys.argv[2]
ours, tail = (json.load(open(p)) for p in sys.argv[3:5])
ours_rss, tail_rss = (json.loads(a)["rss_kib_peak"] / 1024 for a in sys.argv[5:7])
shipped = (int(sys.argv[8]) - int(sys.argv[7])) / ours["seconds"]
with open(tsv, "a") as f:
    for tool, c, r in (("log-tail-ship", ours, ours_rss), ("tail -F", tail, tail_rss)):
        f.write(f"{n}\t{tool}\tcpu_percent\t{c['cpu_percent']}\n")
        f.write(f"{n}\t{tool}\trss_mib\t{round(r, 2)}\n")
    f.write(f"{n}\tlog-tail-ship\tshipped_lines_per_second\t{round(shipped, 1)}\n")
print(f"  {n} files: {shipped:.0f} lines/s reached the stand-in (written: {10 * int(n)}/s)")
ROWS
    echo "  load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for p in "$follower" "$tailer" "$writer"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  done
  python3 $m table "$tsv"
  scripts/bench/plot.sh "$tsv" docs/bench/log-tail-ship.png "log-tail-ship following N files at 10 lines/s each vs tail -F, by files" >/dev/null
  echo "wrote $tsv and docs/bench/log-tail-ship.png"
  exit 0
fi

# An access log: one line in ten is a health check (the noise to drop).
python3 - "$work/access.log" "$lines" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        url = "/health" if i % 10 == 0 else f"/api/items/{i % 977}"
        f.write(f'192.168.1.{i % 250} - - [26/Nov/2026:06:{i // 60000 % 60:02d}:{i // 1000 % 60:02d} +0000] '
                f'"GET {url} HTTP/1.1" 200 {i % 5000} "-" "curl/8.5.0" {i}\n')
PY
size=$(stat -c %s "$work/access.log")

# Where both write. Not /dev/null itself: GNU grep recognises /dev/null as its output
# and then stops at the first line it would print (as with -q), so the pipe would do
# almost nothing. A device node of our own for the same null device is not
# recognised: both sides do all their work and neither pays for a reader. Where a
# node cannot be made (no CAP_MKNOD), both write into a pipe read by cat.
if mknod "$work/null" c 1 3 2>/dev/null && echo probe >"$work/null" 2>/dev/null; then
  sink="> '$work/null'"; sink_name="a null device node (not /dev/null)"
else
  sink="| cat >/dev/null"; sink_name="a pipe read by cat"
fi
# The two take turns, so a change in the machine's load hits both alike.
pipe="tail -n +1 '$work/access.log' | grep -v '$regex' $sink"
ours="'$bin' --file '$work/access.log' --from-beginning --once --stdout --drop '$regex' $sink"
both=$(python3 $m turns "$runs" "$pipe" "$ours")
# The issue's "on one core": both pinned to CPU 0.
both_1=$(python3 $m turns "$runs" "taskset -c 0 sh -c \"$pipe\"" "taskset -c 0 sh -c \"$ours\"")
peer=$(python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["a"]))' "$both")
to_stdout=$(python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["b"]))' "$both")
peer_1=$(python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["a"]))' "$both_1")
to_stdout_1=$(python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["b"]))' "$both_1")
# Peak RSS of the tool itself (not of the sh around it).
stdout_rss=$(python3 $m run 1 -- "$bin" --file "$work/access.log" --from-beginning --once --stdout --drop "$regex")

python3 scripts/bench/loki-stand-in.py "$work/port" & pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$work/port")"
to_loki=$(python3 $m run "$runs" -- "$bin" --file "$work/access.log" --from-beginning --once --quiet --loki "$url" --drop "$regex")
received=$(curl -fsS "$url/count")
# The tool's own CPU for one Loki run (its wall time includes waiting for the stand-in).
loki_cpu=$( { /usr/bin/time -f "%U %S" "$bin" --file "$work/access.log" --from-beginning --once --quiet --loki "$url" --drop "$regex" ; } 2>&1 | tail -1)

# Before and after a change, in the same run and taking turns.
if [ -n "${LOGSHIP_BEFORE_BIN:-}" ]; then
  before=$LOGSHIP_BEFORE_BIN
  ba=$(python3 $m turns "$runs" \
    "'$before' --file '$work/access.log' --from-beginning --once --stdout --drop '$regex' $sink" \
    "'$bin' --file '$work/access.log' --from-beginning --once --stdout --drop '$regex' $sink")
  ba_loki=$(python3 $m turns "$runs" \
    "'$before' --file '$work/access.log' --from-beginning --once --quiet --loki '$url' --drop '$regex'" \
    "'$bin' --file '$work/access.log' --from-beginning --once --quiet --loki '$url' --drop '$regex'")
  python3 - "$lines" "$runs" "$ba" "$ba_loki" <<'PY'
import json, sys
n, runs = int(sys.argv[1]), sys.argv[2]
for name, r in (("--stdout", json.loads(sys.argv[3])), ("--loki  ", json.loads(sys.argv[4]))):
    a, b = r["a"], r["b"]
    rate = lambda x: n / (x["wall_ms_median"] / 1000)
    print(f"before {name}  {rate(a):12,.0f} lines/s   after {rate(b):12,.0f} lines/s   "
          f"ratio after / before {rate(b) / rate(a):.3f}   (CPU {a['cpu_ms_median']:.0f} / {b['cpu_ms_median']:.0f} ms, {runs} turns each, medians)")
PY
fi

# A follower with nothing to do: CPU over the idle seconds, and its peak RSS after
# shipping the whole file first (the back-pressure buffers are bounded by one batch).
"$bin" --file "$work/access.log" --from-beginning --loki "$url" --positions "$work/pos.json" --quiet &
follower=$!; pids+=("$follower")
for _ in $(seq 600); do [ -s "$work/pos.json" ] && grep -q "\"offset\":$size" "$work/pos.json" && break; sleep 0.1; done
idle_cpu=$(python3 $m cpu "$follower" "$idle")
follower_rss=$(python3 $m hwm "$follower")

python3 - "$lines" "$peer" "$to_stdout" "$stdout_rss" "$to_loki" "$received" "$idle_cpu" "$follower_rss" "$runs" "$loki_cpu" "$peer_1" "$to_stdout_1" "$sink_name" <<'PY'
import json, sys
n = int(sys.argv[1])
peer, out, out_rss, loki = (json.loads(a) for a in sys.argv[2:6])
received = int(sys.argv[6])
idle, frss = json.loads(sys.argv[7]), json.loads(sys.argv[8])
runs = sys.argv[9]
user, system = (float(x) for x in sys.argv[10].split())
peer_1, out_1 = json.loads(sys.argv[11]), json.loads(sys.argv[12])
rate = lambda r: n / (r["wall_ms_median"] / 1000)
print(f"file of {n} lines, drop regex 'GET /health' (10 % of lines), {runs} runs, medians; output to {sys.argv[13]}")
print(f"tail -n +1 FILE | grep -v REGEX          {rate(peer):12,.0f} lines/s   {peer['wall_ms_median']:8.1f} ms (fastest {peer['wall_ms_min']:.1f})")
print(f"log-tail-ship --once --stdout --drop     {rate(out):12,.0f} lines/s   {out['wall_ms_median']:8.1f} ms (fastest {out['wall_ms_min']:.1f})   peak RSS {out_rss['rss_kib_max']/1024:.1f} MiB")
print(f"the pipe on one core (taskset -c 0)      {rate(peer_1):12,.0f} lines/s   {peer_1['wall_ms_median']:8.1f} ms (fastest {peer_1['wall_ms_min']:.1f})")
print(f"log-tail-ship on one core                {rate(out_1):12,.0f} lines/s   {out_1['wall_ms_median']:8.1f} ms (fastest {out_1['wall_ms_min']:.1f})")
print(f"log-tail-ship --once --loki --drop       {rate(loki):12,.0f} lines/s   {loki['wall_ms_median']:8.1f} ms   peak RSS {loki['rss_kib_max']/1024:.1f} MiB   (stand-in received {received} entries over {2*int(runs)} runs)")
print(f"log-tail-ship --once --loki CPU         {user + system:.2f} s user+sys for {n} lines = {n / (user + system):,.0f} lines per CPU second (the rest of the wall time is the Python stand-in)")
print(f"CPU user+sys, medians                     log-tail-ship {out['cpu_ms_median']:.1f} ms, the pipe {peer['cpu_ms_median']:.1f} ms")
print(f"ratio stdout / pipe (lines/s)            {rate(out)/rate(peer):.3f}")
print(f"ratio on one core                        {rate(out_1)/rate(peer_1):.3f}")
print(f"ratio loki / pipe (lines/s)              {rate(loki)/rate(peer):.3f}")
print(f"follower after shipping the file         peak RSS {frss['rss_kib_peak']/1024:.1f} MiB")
print(f"follower idle                            CPU {idle['cpu_percent']:.4f} % of one core over {idle['seconds']} s ({idle['cpu_seconds']} s CPU)")
PY

# Many files, idle: N files of a few lines (and a rotated sibling each) in one
# directory, followed from their beginning; measured once every line is shipped (with
# --positions: every offset saved; without: every line on stdout).
for n in 1 100 1000; do
  for pos in with without; do
    fdir=$work/many-$n-$pos
    mkdir -p "$fdir"
    python3 - "$fdir" "$n" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    for name in (f"f{i:04}.log", f"f{i:04}.log.1"):
        with open(f"{d}/{name}", "w") as f:
            f.write("".join(f"{name} line {k}\n" for k in range(3)))
PY
    if [ $pos = with ]; then
      "$bin" --file "$fdir/*.log" --from-beginning --loki "$url" --positions "$fdir.json" --quiet &
    else
      "$bin" --file "$fdir/*.log" --from-beginning --stdout >"$fdir.out" &
    fi
    f=$!; pids+=("$f")
    for _ in $(seq 600); do
      if [ $pos = with ]; then
        python3 -c 'import json,os,sys; p=json.load(open(sys.argv[1])); sys.exit(0 if len(p["files"])==int(sys.argv[2]) and all(e["offset"]==os.path.getsize(e["path"]) for e in p["files"]) else 1)' "$fdir.json" "$n" 2>/dev/null && break
      else
        [ "$(wc -l <"$fdir.out" 2>/dev/null || echo 0)" -ge $((3 * n)) ] && break
      fi
      sleep 0.1
    done
    c=$(python3 $m cpu "$f" "$idle_files")
    r=$(python3 $m rss "$f")
    python3 - "$n" "$pos" "$c" "$r" <<'PY'
import json, sys
n, pos, c, r = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"idle, {n:5d} files {pos:7s} --positions  CPU {c['cpu_percent']:7.3f} % over {c['seconds']} s   "
      f"RSS {r['rss_kib']/1024:6.1f} MiB (peak {r['rss_kib_peak']/1024:6.1f} MiB)")
PY
    kill "$f"; wait "$f" 2>/dev/null || true
  done
done
