#!/usr/bin/env bash
# Benchmark: ctr-stats against `docker stats --no-stream` on the same 20 containers,
# in one run on this machine: --format prom from the cgroup files and from the stats
# API, the default JSON lines run (1 s CPU window), and ctr-stats' CPU use in loop
# mode at --interval 30s. Not a test: it prints medians and ratios for the README.
#
#   scripts/bench/ctr-stats.sh [RUNS] [LOOP_SECONDS]     (defaults 15 and 95)
#   scripts/bench/ctr-stats.sh --scale 10,50,100 [RUNS]   (RUNS default 5)
#
# --scale: for each N (ascending), N idle containers; `ctr-stats --format prom --source
# cgroup` against `docker stats --no-stream` on the same N, in turn. Prints per size
# wall, CPU and peak RSS of both and the ratio; writes docs/bench/ctr-stats.tsv and
# plots docs/bench/ctr-stats.png.
#
# Uses the engine at DOCKER_HOST (default: the one scripts/test starts) and the image
# HLT_DOCKER_IMAGE (default hlt-busybox:latest); the containers it starts carry the
# label hlt.test=bench-ctr-stats-<pid> and are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=
if [ "${1:-}" = --scale ]; then scale=${2:?--scale needs a list such as 10,50,100}; shift 2; fi
runs=${1:-15}
loop_seconds=${2:-95}
m=scripts/bench/measure.py
export DOCKER_HOST=${DOCKER_HOST:-unix:///run/hlt-docker.sock}
image=${HLT_DOCKER_IMAGE:-hlt-busybox:latest}
docker version >/dev/null 2>&1 || { echo "no Docker engine at $DOCKER_HOST (run scripts/test once, or set DOCKER_HOST)" >&2; exit 69; }

cargo build --release -q -p ctr-stats
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/release/ctr-stats
label=hlt.test=bench-ctr-stats-$$
work=$(mktemp -d)
ids=()
loop=""
cleanup() {
  [ -n "$loop" ] && kill "$loop" 2>/dev/null || true
  [ ${#ids[@]} -gt 0 ] && docker rm -f "${ids[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$scale" ]; then
  runs=${1:-5}
  mkdir -p docs/bench
  tsv=docs/bench/ctr-stats.tsv
  : >"$tsv"
  echo "ctr-stats --scale $scale: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(docker version -f 'Docker {{.Server.Version}}'), $runs turns per size"
  filter=(--docker-filter "label=$label")
  for n in ${scale//,/ }; do
    while [ ${#ids[@]} -lt "$n" ]; do
      opts=(--network none --label "$label")
      [ $((${#ids[@]} % 2)) = 1 ] && opts+=(--memory 64m)
      ids+=("$(docker run -d "${opts[@]}" "$image" sleep 3600)")
    done
    seen=$("$bin" "${filter[@]}" --format prom --source cgroup | grep -c '^container_memory_usage_bytes{' || true)
    [ "$seen" = "$n" ] || { echo "expected $n containers, ctr-stats sees $seen" >&2; exit 70; }
    python3 $m pair "$runs" "$tsv" "$n" \
      "ctr-stats prom cgroup" "'$bin' --docker-filter 'label=$label' --format prom --source cgroup" \
      "docker stats --no-stream" "docker stats --no-stream ${ids[*]}" >/dev/null
    echo "  $n containers: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  python3 $m table "$tsv"
  scripts/bench/plot.sh "$tsv" docs/bench/ctr-stats.png "ctr-stats --format prom --source cgroup vs docker stats --no-stream, by containers" >/dev/null
  echo "wrote $tsv and docs/bench/ctr-stats.png"
  exit 0
fi

# 20 idle containers, as a homelab has: some with memory limits, all on --network none.
for i in $(seq 1 20); do
  opts=(--network none --label "$label")
  [ $((i % 2)) = 0 ] && opts+=(--memory 64m)
  ids+=("$(docker run -d "${opts[@]}" "$image" sleep 3600)")
done
filter=(--docker-filter "label=$label")
n=$("$bin" "${filter[@]}" --window 0 | wc -l)
[ "$n" = 20 ] || { echo "expected 20 containers, ctr-stats sees $n" >&2; exit 70; }

prom_cgroup=$(python3 $m run "$runs" -- "$bin" "${filter[@]}" --format prom --source cgroup)
prom_api=$(python3 $m run "$runs" -- "$bin" "${filter[@]}" --format prom --source api)
jsonl=$(python3 $m run 5 -- "$bin" "${filter[@]}")
peer=$(python3 $m run 5 -- docker stats --no-stream "${ids[@]}")

"$bin" "${filter[@]}" --interval 30s --textfile-dir "$work" --quiet &
loop=$!
loop_cpu=$(python3 $m cpu "$loop" "$loop_seconds")
loop_rss=$(python3 $m hwm "$loop")

python3 - "$prom_cgroup" "$prom_api" "$jsonl" "$peer" "$loop_cpu" "$loop_rss" <<'PY'
import json, sys
cg, api, jl, peer, loop, hwm = (json.loads(a) for a in sys.argv[1:])
def row(name, r):
    print(f"{name:<44} median {r['wall_ms_median']:9.2f} ms   peak RSS {r['rss_kib_median']/1024:6.1f} MiB   ({r['runs']} runs)")
print("20 containers")
row("ctr-stats --format prom --source cgroup", cg)
row("ctr-stats --format prom --source api", api)
row("ctr-stats (JSON lines, 1 s CPU window)", jl)
row("docker stats --no-stream", peer)
for name, r in (("prom, cgroup", cg), ("prom, api", api), ("JSON lines, 1 s window", jl)):
    print(f"ratio {name:<24} / docker stats   wall {r['wall_ms_median']/peer['wall_ms_median']:.3f}   RSS {r['rss_kib_median']/peer['rss_kib_median']:.3f}")
print(f"ctr-stats --interval 30s (20 containers)      CPU {loop['cpu_percent']:.4f} % of one core over {loop['seconds']} s "
      f"({loop['cpu_seconds']} s CPU), peak RSS {hwm['rss_kib_peak']/1024:.1f} MiB")
PY
