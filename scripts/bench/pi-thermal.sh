#!/usr/bin/env bash
# Benchmark: pi-thermal one-shot against one scrape of node_exporter's /metrics, in
# one run on this machine, plus pi-thermal's CPU use in loop mode at --interval 30s.
# Not a test: it prints medians and ratios for the README.
#
#   scripts/bench/pi-thermal.sh [RUNS] [LOOP_SECONDS]     (defaults 30 and 65)
#   scripts/bench/pi-thermal.sh --scale 1,10,100 [RUNS]    (RUNS default 30)
#
# --scale: for each number N of thermal zones, a root whose /sys/class/thermal holds N
# zones (the rest of /sys, and /proc, are this machine's, through symlinks), read by
# `pi-thermal --root` and by a node_exporter given the same tree (--path.sysfs); one
# sample and one scrape in turn. Prints per size wall, CPU and peak RSS of both and
# the ratios; writes docs/bench/pi-thermal.tsv and plots docs/bench/pi-thermal.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=
if [ "${1:-}" = --scale ]; then scale=${2:?--scale needs a list such as 1,10,100}; shift 2; fi
runs=${1:-30}
loop_seconds=${2:-65}
m=scripts/bench/measure.py
command -v prometheus-node-exporter >/dev/null || { echo "needs prometheus-node-exporter (scripts/test installs it)" >&2; exit 69; }

cargo build --release -q -p pi-thermal
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/release/pi-thermal
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ -n "$scale" ]; then
  mkdir -p docs/bench
  tsv=docs/bench/pi-thermal.tsv
  : >"$tsv"
  echo "pi-thermal --scale $scale: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $runs turns per size"
  for n in ${scale//,/ }; do
    root=$work/root-$n
    mkdir -p "$root/sys/class/thermal" "$root/textfile"
    for d in proc dev run etc var; do ln -s "/$d" "$root/$d"; done
    for d in /sys/*; do [ "$d" = /sys/class ] || ln -s "$d" "$root$d"; done
    for d in /sys/class/*; do [ "$d" = /sys/class/thermal ] || ln -s "$d" "$root$d"; done
    for i in $(seq 0 $((n - 1))); do
      z=$root/sys/class/thermal/thermal_zone$i
      mkdir -p "$z"
      echo "zone$i-thermal" >"$z/type"; echo $((40000 + i * 10)) >"$z/temp"
      echo step_wise >"$z/policy"; echo enabled >"$z/mode"
    done
    port=$(free_port)
    prometheus-node-exporter --web.listen-address="127.0.0.1:$port" --path.sysfs="$root/sys" \
      --collector.textfile.directory="$root/textfile" >"$work/ne-$n.log" 2>&1 &
    ne=$!; pids+=("$ne")
    for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/metrics" && break; sleep 0.1; done
    zones=$("$bin" --root "$root" --format prom | grep -c '^pi_temperature_celsius{' || true)
    scraped=$(curl -fs "http://127.0.0.1:$port/metrics" | grep -c '^node_thermal_zone_temp{' || true)
    python3 $m scrape "$runs" "$tsv" "$n" pi-thermal node_exporter "http://127.0.0.1:$port/metrics" "$ne" \
      -- "$bin" --root "$root" --format prom >/dev/null
    # The floor under any one-shot tool: starting a process that does nothing.
    floor=$(python3 $m run "$runs" -- /bin/true)
    python3 $m row "$tsv" "$n" "/bin/true (process start)" wall_ms "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["wall_ms_median"])' "$floor")"
    echo "  $n zones: pi-thermal read $zones, node_exporter $scraped; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    kill "$ne"; wait "$ne" 2>/dev/null || true
  done
  python3 $m table "$tsv"
  scripts/bench/plot.sh "$tsv" docs/bench/pi-thermal.png "pi-thermal one sample vs one node_exporter scrape, by thermal zones" >/dev/null
  echo "wrote $tsv and docs/bench/pi-thermal.png"
  exit 0
fi

# node_exporter with its default collectors, as a Pi owner runs it, plus the textfile
# directory holding pi-thermal's page.
port=$(free_port)
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
