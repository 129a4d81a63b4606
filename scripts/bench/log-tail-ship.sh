#!/usr/bin/env bash
# Benchmark: log-tail-ship against `tail -n +1 FILE | grep -v REGEX` on the same file,
# in one run on this machine: lines per second to --stdout and to a Loki stand-in
# (scripts/bench/loki-stand-in.py; Loki cannot be installed here), both with one drop
# regex; peak RSS; CPU of a follower over idle seconds. Not a test: it prints medians
# and ratios for the README.
#
#   scripts/bench/log-tail-ship.sh [LINES] [RUNS] [IDLE_SECONDS]   (defaults 1000000, 5, 60)
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=${1:-1000000}
runs=${2:-5}
idle=${3:-60}
m=scripts/bench/measure.py
regex='GET /health'

cargo build --release -q -p log-tail-ship
bin=$PWD/target/release/log-tail-ship
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

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

# Idle followers WITHOUT --positions, 1, 100 and 1,000 files (issue 25: with no
# positions file to write, the run loop never slept and spun a core). Goal: CPU under
# 0.1 % of one core at every size.
for n in 1 100 1000; do
  d="$work/idle-$n"; mkdir -p "$d"
  for i in $(seq "$n"); do echo "line $i" >"$d/f$i.log"; done
  "$bin" --file "$d/*.log" --stdout >/dev/null & p=$!; pids+=("$p")
  for _ in $(seq 600); do [ "$(find "/proc/$p/fd" -lname "$d/*" 2>/dev/null | wc -l)" -ge "$n" ] && break; sleep 0.1; done
  python3 - "$n" "$(python3 $m cpu "$p" "$idle")" <<'PY'
import json, sys
c = json.loads(sys.argv[2])
print(f"follower idle, {int(sys.argv[1]):>5} files, no --positions  CPU {c['cpu_percent']:.4f} % of one core over {c['seconds']} s ({c['cpu_seconds']} s CPU)")
PY
  kill "$p"; wait "$p" 2>/dev/null || true
done
