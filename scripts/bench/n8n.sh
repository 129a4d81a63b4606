#!/usr/bin/env bash
# Benchmark: a real n8n (scripts/n8n/install) with the compose stack's settings, and the
# two settings this stack chose measured against their alternatives, side by side in
# one run. Not a test: it prints executions per second, memory and ratios.
#
#   scripts/bench/n8n.sh [SECONDS] [CONCURRENCY]    (default 20 s per workflow, 4)
#
# HLT_N8N_KEEP=1 keeps the work directory (logs, databases).
#
# Configurations (each a fresh copy of one prepared data folder):
#   stack     the compose file's settings: N8N_RUNNERS_MODE=external (the runner started
#             by scripts/n8n/launcher), DB_SQLITE_POOL_SIZE=2
#   internal  N8N_RUNNERS_MODE=internal: n8n starts the runner as its own child (with
#             the runners image's module allow-list, crypto and moment)
#   pool1     DB_SQLITE_POOL_SIZE=1 (one reader connection)
#   nosave    EXECUTIONS_DATA_SAVE_ON_SUCCESS=none: successful executions not stored
# n8n 2.x has no rollback-journal SQLite any more (the legacy driver is gone: WAL
# always, pool size at least 1), so WAL against the default journal cannot be measured
# on the version the stack runs; docs/workflows.md says what that means.
# Workflows (tests/n8n/workflows.py), each called through its webhook by curl
# --parallel for SECONDS after a warm-up:
#   hlt-code        webhook -> Code node -> response
#   hlt-transform  webhook -> Code node making 1,000 items -> Code node transforming them
#   hlt-http       webhook -> HTTP Request node to a loopback endpoint (no Code node)
# Memory: VmRSS of n8n's process (without the internal runner) and of the runner
# process: once after start (idle), and the peak of samples taken between rounds of
# requests during each workflow's run.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
conc=${2:-4}
# shellcheck source=../n8n/lib.sh
source scripts/n8n/lib.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/hlt-n8n-bench.XXXXXX")
echo_pid=
cleanup() {
  local rc=$?
  set +e
  n8n_cleanup
  [ -n "$echo_pid" ] && { kill "$echo_pid" 2>/dev/null; wait "$echo_pid" 2>/dev/null; }
  if [ "${HLT_N8N_KEEP:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
  exit $rc
}
trap cleanup EXIT
say() { echo "bench/n8n: $*" >&2; }

secrets=$work/secrets
scripts/stack/init-secrets "$secrets" 2>/dev/null
python3 tests/n8n/echo-server.py "$work/echo.port" /dev/null &
echo_pid=$!
for _ in $(seq 100); do [ -s "$work/echo.port" ] && break; sleep 0.1; done
ids=$(python3 tests/n8n/workflows.py "$work/import" "http://127.0.0.1:$(cat "$work/echo.port")/hlt" benchtoken)

say "preparing one data folder (import, publish)"
prep=$work/prep
mkdir -p "$prep"
{
  n8n_cli "$prep" "$secrets" import:credentials --input="$work/import/credentials.json"
  n8n_cli "$prep" "$secrets" import:workflow --separate --input="$work/import/workflows"
  for id in $ids; do n8n_cli "$prep" "$secrets" publish:workflow --id="$id"; done
} >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; exit 1; }

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The internal runner: n8n's child running @n8n/task-runner.
internal_runner() {
  local p
  for p in $(cat "/proc/$1/task/"*/children 2>/dev/null); do
    grep -qz task-runner "/proc/$p/cmdline" 2>/dev/null && { echo "$p"; return; }
  done
}

# run CONFIG WORKFLOW PORT N8N_PID RUNNER_PID_SOURCE: prints "CONFIG WORKFLOW exec/s n8n_kib runner_kib"
measure() {
  local config=$1 wf=$2 port=$3 npid=$4 rsrc=$5 url n=0 peak_n=0 peak_r=0 rp r start end ok
  url="http://127.0.0.1:$port/webhook/$wf"
  # Warm-up: the runner started, code compiled, connections open.
  curl -fsS --max-time 60 -o /dev/null "$url?x=1"
  curl -sS --no-progress-meter --max-time 60 --parallel --parallel-max "$conc" -o /dev/null -w '%{http_code}\n' "$url?x=[1-$((conc * 4))]" >/dev/null
  : >"$work/codes"
  start=$(date +%s.%N)
  # Rounds of 2*conc requests until SECONDS have passed; RSS sampled between rounds.
  local deadline=$((SECONDS + secs))
  while [ $SECONDS -lt $deadline ]; do
    curl -sS --no-progress-meter --max-time 60 --parallel --parallel-max "$conc" -o /dev/null -w '%{http_code}\n' \
      "$url?x=[1-$((conc * 2))]" >>"$work/codes" 2>/dev/null || true
    r=$(rss "$npid"); [ "$r" -gt "$peak_n" ] && peak_n=$r
    rp=$($rsrc)
    if [ -n "$rp" ]; then r=$(rss "$rp"); [ "$r" -gt "$peak_r" ] && peak_r=$r; fi
  done
  end=$(date +%s.%N)
  ok=$(grep -c '^200$' "$work/codes" || true)
  n=$(wc -l <"$work/codes")
  [ "$ok" = "$n" ] || say "$config $wf: $((n - ok)) of $n requests failed"
  python3 -c 'import sys; c, w, ok, s, e, pn, pr = sys.argv[1:]; print(f"{c} {w} {int(ok) / (float(e) - float(s)):.1f} {int(pn) // 1024} {int(pr) // 1024}")' \
    "$config" "$wf" "$ok" "$start" "$end" "$peak_n" "$peak_r"
}

results=$work/results
: >"$results"
configs=(stack internal pool1 nosave)
for config in "${configs[@]}"; do
  home=$work/$config
  mkdir -p "$home"
  cp -a "$prep/.n8n" "$home/.n8n"
  case $config in
    stack) overrides=() ;;
    # The runners image's launcher allows crypto and moment to the runner; n8n's own
    # runner takes them from n8n's environment.
    internal) overrides=(N8N_RUNNERS_MODE=internal NODE_FUNCTION_ALLOW_BUILTIN=crypto NODE_FUNCTION_ALLOW_EXTERNAL=moment) ;;
    pool1) overrides=(DB_SQLITE_POOL_SIZE=1) ;;
    nosave) overrides=(EXECUTIONS_DATA_SAVE_ON_SUCCESS=none) ;;
  esac
  port=$(n8n_free_port)
  broker=$(n8n_free_port)
  say "$config: starting n8n ${overrides[*]}"
  n8n_start "$home" "$secrets" "$port" "$broker" "$work/$config.log" ${overrides[@]+"${overrides[@]}"}
  npid=$n8n_pid
  if [ "$config" != internal ]; then
    n8n_start_runners "$secrets" "$broker" "$work/$config-runners.log" "$work/$config-runner.pid"
    rsrc="cat $work/$config-runner.pid"
  else
    rsrc="internal_runner $npid"
  fi
  n8n_wait_webhook "$port" '/webhook/hlt-code?x=0'
  # Memory after start and one call, before the load.
  sleep 2
  rp=$($rsrc)
  echo "$config idle 0 $(($(rss "$npid") / 1024)) $(($( [ -n "$rp" ] && rss "$rp" || echo 0) / 1024))" | tee -a "$results" >&2
  for wf in hlt-code hlt-transform hlt-http; do
    measure "$config" "$wf" "$port" "$npid" "$rsrc" | tee -a "$results" >&2
  done
  n8n_cleanup
done

python3 - "$results" "$secs" "$conc" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    c, w, eps, n, r = line.split()
    rows[(c, w)] = (float(eps), int(n), int(r))
print(f"n8n {sys.argv[2]} s per workflow, {sys.argv[3]} requests at a time; memory: peak VmRSS MiB")
print(f"{'workflow':15} {'configuration':13} {'exec/s':>8} {'n8n MiB':>8} {'runner MiB':>10}  ratio to the stack (exec/s)")
for w in ("idle", "hlt-code", "hlt-transform", "hlt-http"):
    base = rows.get(("stack", w))
    for c in ("stack", "internal", "pool1", "nosave"):
        if (c, w) not in rows:
            continue
        eps, n, r = rows[(c, w)]
        ratio = f"{eps / base[0]:.2f}" if base and base[0] else "-"
        if w == "idle":
            print(f"{w:15} {c:13} {'-':>8} {n:8d} {r:10d}  (after start and one call)")
            continue
        print(f"{w:15} {c:13} {eps:8.1f} {n:8d} {r:10d}  {ratio}")
PY
