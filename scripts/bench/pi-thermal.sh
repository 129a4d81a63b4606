#!/usr/bin/env bash
# Benchmark: pi-thermal one-shot against one scrape of node_exporter's /metrics, in
# one run on this machine, plus pi-thermal's CPU use in loop mode at --interval 30s.
# Not a test: it prints medians and ratios for the README.
#
#   scripts/bench/pi-thermal.sh [RUNS] [LOOP_SECONDS]     (defaults 30 and 65)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-30}
loop_seconds=${2:-65}
m=scripts/bench/measure.py
command -v prometheus-node-exporter >/dev/null || { echo "needs prometheus-node-exporter (scripts/test installs it)" >&2; exit 69; }

cargo build --release -q -p pi-thermal
bin=target/release/pi-thermal
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

# node_exporter with its default collectors, as a Pi owner runs it, plus the textfile
# directory holding pi-thermal's page.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/textfile"
"$bin" --textfile-dir "$work/textfile" --quiet
prometheus-node-exporter --web.listen-address="127.0.0.1:$port" \
  --collector.textfile.directory="$work/textfile" >"$work/ne.log" 2>&1 &
ne=$!; pids+=("$ne")
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/metrics" && break; sleep 0.1; done

one=$(python3 $m run "$runs" -- "$bin" --format prom)
scrape=$(python3 $m http "$runs" "http://127.0.0.1:$port/metrics")
ne_rss=$(python3 $m hwm "$ne")

"$bin" --interval 30s --textfile-dir "$work/textfile" --quiet &
loop=$!; pids+=("$loop")
loop_cpu=$(python3 $m cpu "$loop" "$loop_seconds")

python3 - "$one" "$scrape" "$ne_rss" "$loop_cpu" <<'PY'
import json, sys
one, scrape, ne, loop = (json.loads(a) for a in sys.argv[1:])
print(f"pi-thermal one-shot --format prom   median {one['wall_ms_median']:8.2f} ms   peak RSS {one['rss_kib_median']/1024:6.1f} MiB   ({one['runs']} runs)")
print(f"node_exporter scrape of /metrics     median {scrape['wall_ms_median']:8.2f} ms   peak RSS {ne['rss_kib_peak']/1024:6.1f} MiB   ({scrape['runs']} runs, {scrape['bytes']} bytes)")
print(f"ratio (pi-thermal / node_exporter)   wall {one['wall_ms_median']/scrape['wall_ms_median']:.3f}   RSS {one['rss_kib_median']/ne['rss_kib_peak']:.3f}")
print(f"pi-thermal --interval 30s            CPU {loop['cpu_percent']:.4f} % of one core over {loop['seconds']} s ({loop['cpu_seconds']} s CPU)")
PY
