# Shared by tests/n8n/run and scripts/bench/n8n.sh (sourced): a real n8n and its task
# runner on 127.0.0.1, with the environment scripts/stack/docker-compose.yml gives them.
# Every process started here is recorded in n8n_pids and stopped by pid (n8n_cleanup).
#
# What differs from the compose stack, replaced by name here and nowhere else (the rest
# comes from the compose file through scripts/n8n/compose-env):
#   N8N_LISTEN_ADDRESS, N8N_PORT              127.0.0.1 and a free port (Traefik's side)
#   N8N_RUNNERS_BROKER_LISTEN_ADDRESS         127.0.0.1 (0.0.0.0 on the compose network)
#   N8N_RUNNERS_BROKER_PORT                   a free port (5679 in compose), so that two
#                                             n8n can run at once
#   N8N_RUNNERS_AUTH_TOKEN_FILE               /run/secrets/... -> the test's secrets dir
#   N8N_USER_FOLDER                           the folder whose .n8n is the data folder
#                                             (compose mounts N8N_DATA at /home/node/.n8n)
#   the runners' N8N_RUNNERS_TASK_BROKER_URI  http://n8n:5679 -> http://127.0.0.1:PORT
#   the runners' health check port            a free port (5680 in compose)
#   the launcher                              scripts/n8n/launcher (see there), run by
#                                             the compose file's own entrypoint command

n8n_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N8N_INSTALL=$("$n8n_repo/scripts/n8n/install")
export N8N_INSTALL
n8n_bin=$N8N_INSTALL/app/node_modules/n8n/bin/n8n
n8n_pids=()

n8n_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# n8n_run HOME SECRETS PORT BROKER_PORT COMMAND...: execs COMMAND in n8n's compose
# environment, so call it in a subshell: ( n8n_run ... ) or n8n_run ... &. Extra
# NAME=value words before COMMAND (after the four) override compose's values.
n8n_run() {
  local home=$1 secrets=$2 port=$3 broker=$4
  shift 4
  {
    eval "$("$n8n_repo/scripts/n8n/compose-env" n8n)"
    export N8N_RUNNERS_AUTH_TOKEN_FILE=${N8N_RUNNERS_AUTH_TOKEN_FILE/#\/run\/secrets/$secrets}
    export N8N_RUNNERS_BROKER_LISTEN_ADDRESS=127.0.0.1 N8N_RUNNERS_BROKER_PORT=$broker
    export N8N_LISTEN_ADDRESS=127.0.0.1 N8N_PORT=$port N8N_USER_FOLDER=$home
    export PATH=$N8N_INSTALL/bin:$PATH
    while [ $# -gt 0 ] && [[ $1 == *=* ]]; do export "${1?}"; shift; done
    exec "$@"
  }
}

# n8n_cli HOME SECRETS ARGS...: an n8n CLI command (import, export...) on that folder.
n8n_cli() {
  local home=$1 secrets=$2
  shift 2
  (n8n_run "$home" "$secrets" 0 0 "$n8n_bin" "$@")
}

# n8n_start HOME SECRETS PORT BROKER_PORT LOG [NAME=value...]: starts n8n, waits (at most
# 120 s) until /healthz answers; sets n8n_pid.
n8n_start() {
  local home=$1 secrets=$2 port=$3 broker=$4 log=$5
  shift 5
  n8n_run "$home" "$secrets" "$port" "$broker" "$@" "$n8n_bin" start >"$log" 2>&1 &
  n8n_pid=$!
  n8n_pids+=("$n8n_pid")
  local i
  for i in $(seq 1200); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz/readiness" 2>/dev/null && return 0
    kill -0 "$n8n_pid" 2>/dev/null || { echo "n8n exited at start:" >&2; tail -30 "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "n8n did not answer /healthz/readiness within 120 s:" >&2
  tail -30 "$log" >&2
  return 1
}

# n8n_wait_webhook PORT PATH: waits (at most 120 s) until GET PATH is no longer 404: n8n
# answers /healthz/readiness before it has registered the published workflows' webhooks.
n8n_wait_webhook() {
  local code i
  for i in $(seq 600); do
    code=$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null) || code=000
    [ "$code" != 404 ] && [ "$code" != 000 ] && return 0
    sleep 0.2
  done
  echo "GET $2 still answers $code after 120 s" >&2
  return 1
}

# n8n_start_runners SECRETS BROKER_PORT LOG PIDFILE: the runners' compose environment and
# entrypoint (its shell reads the token from the secret file), with scripts/n8n/launcher
# in place of the image's launcher; waits (at most 60 s) until a runner has started.
n8n_start_runners() {
  local secrets=$1 broker=$2 log=$3 pidfile=$4 entry=() w
  while IFS= read -r w; do
    w=${w//\/run\/secrets\//$secrets/}
    w=${w//\/usr\/local\/bin\/task-runner-launcher/$n8n_repo/scripts/n8n/launcher}
    entry+=("$w")
  done < <("$n8n_repo/scripts/n8n/compose-env" --launcher)
  # tini is the container's init: the process tree here is ours already.
  [ "${entry[0]}" = tini ] && [ "${entry[1]}" = -- ] && entry=("${entry[@]:2}")
  rm -f "$pidfile"
  (
    eval "$("$n8n_repo/scripts/n8n/compose-env" n8n-runners)"
    export N8N_RUNNERS_TASK_BROKER_URI=http://127.0.0.1:$broker
    export N8N_RUNNERS_LAUNCHER_HEALTH_CHECK_PORT
    N8N_RUNNERS_LAUNCHER_HEALTH_CHECK_PORT=$(n8n_free_port)
    export HLT_RUNNER_PID_FILE=$pidfile PATH=$N8N_INSTALL/bin:$PATH HOME=$N8N_INSTALL/runner-home
    exec "${entry[@]}"
  ) >"$log" 2>&1 &
  runners_pid=$!
  n8n_pids+=("$runners_pid")
  local i
  for i in $(seq 600); do
    [ -s "$pidfile" ] && return 0
    kill -0 "$runners_pid" 2>/dev/null || { echo "the launcher exited:" >&2; tail -20 "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "no runner started within 60 s:" >&2
  tail -20 "$log" >&2
  return 1
}

# n8n_stop PID...: SIGTERM, then SIGKILL after 20 s; waits for each.
n8n_stop() {
  local p i
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for i in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

n8n_cleanup() {
  [ ${#n8n_pids[@]} -gt 0 ] && n8n_stop "${n8n_pids[@]}"
  n8n_pids=()
}

# n8n_rss_kib PID: resident memory of PID and its descendants, in KiB.
n8n_rss_kib() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
kids = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(p))
        except OSError:
            pass
total, todo = 0, [root]
while todo:
    p = todo.pop()
    try:
        with open(f"/proc/{p}/status") as f:
            total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        pass
    todo += kids.get(p, [])
print(total)
PY
}
