#!/usr/bin/env bash
# Benchmark: route-check against curl run in sequence, for the same 50 routes on a
# loopback TLS proxy (nginx, certificates made here with openssl), in one run.
# Each route is an HTTPS request through the proxy to a backend plus the plain-HTTP
# redirect check; curl does the same two requests per route, one route after another.
# Not a test: it prints medians and ratios for the README.
#
#   scripts/bench/route-check.sh [RUNS]     (default 15)
#   scripts/bench/route-check.sh --scale 50,500,5000 [RUNS]     (RUNS default 3)
#
# --scale: for each N, N routes (from a --routes-file) at the default concurrency,
# against the same 2N curl requests run 16 at a time (`xargs -P 16`), in turn; and,
# for N up to 500, once against curl in sequence. Prints per size wall, CPU and peak
# RSS (for curl: the largest single curl) and the ratio; writes
# docs/bench/route-check.tsv and plots docs/bench/route-check.png.
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=
if [ "${1:-}" = --scale ]; then scale=${2:?--scale needs a list such as 50,500,5000}; shift 2; fi
runs=${1:-15}
[ -n "$scale" ] && runs=${1:-3}
routes=50
m=scripts/bench/measure.py
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "needs nginx (Debian nginx-light; scripts/test installs it)" >&2; exit 69; }
command -v openssl >/dev/null && command -v curl >/dev/null || { echo "needs openssl and curl" >&2; exit 69; }

cargo build --release -q -p route-check
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/release/route-check
work=$(mktemp -d)
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A CA and one wildcard leaf for r1..rN.bench.test.
names=(); for i in $(seq 1 $routes); do names+=("r$i.bench.test"); done
san='DNS:*.bench.test'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${names[0]}" \
  -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$san" >"$work/ext"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 60 -extfile "$work/ext" -out "$work/leaf.pem" 2>/dev/null

tls=$(free_port); plain=$(free_port); backend=$(free_port)
mkdir -p "$work/tmp"
cat >"$work/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/tmp/b; proxy_temp_path $work/tmp/p; fastcgi_temp_path $work/tmp/f;
  uwsgi_temp_path $work/tmp/u; scgi_temp_path $work/tmp/s;
  ssl_protocols TLSv1.2 TLSv1.3;
  server { listen 127.0.0.1:$backend; return 200 "ok\n"; }
  server { listen 127.0.0.1:$tls ssl; server_name *.bench.test;
    ssl_certificate $work/leaf.pem; ssl_certificate_key $work/leaf.key;
    location / { proxy_pass http://127.0.0.1:$backend; } }
  server { listen 127.0.0.1:$plain; return 301 https://\$host\$request_uri; }
}
EOF
"$nginx" -p "$work" -e "$work/error.log" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$plain/" && break; sleep 0.05; done

if [ -n "$scale" ]; then
  mkdir -p docs/bench
  tsv=docs/bench/route-check.tsv
  : >"$tsv"
  echo "route-check --scale $scale: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $("$nginx" -v 2>&1), $runs turns per size"
  for n in ${scale//,/ }; do
    : >"$work/routes-$n"; : >"$work/curl-$n"
    for i in $(seq 1 "$n"); do
      echo "r$i.bench.test" >>"$work/routes-$n"
      printf -- '--connect-to r%s.bench.test:443:127.0.0.1:%s https://r%s.bench.test/\n--connect-to r%s.bench.test:80:127.0.0.1:%s http://r%s.bench.test/\n' \
        "$i" "$tls" "$i" "$i" "$plain" "$i" >>"$work/curl-$n"
    done
    rc="'$bin' --routes-file '$work/routes-$n' --connect 127.0.0.1:$tls --connect-http 127.0.0.1:$plain --ca '$work/ca.pem' --quiet --check"
    sh -c "$rc" || { echo "route-check found problems on the bench proxy at $n routes (exit $?)" >&2; exit 70; }
    par="xargs -P 16 -L 1 curl -sS -o /dev/null --cacert '$work/ca.pem' <'$work/curl-$n'"
    python3 $m pair "$runs" "$tsv" "$n" "route-check" "$rc" "curl, xargs -P 16" "$par" >/dev/null
    if [ "$n" -le 500 ]; then
      seq_run=$(python3 $m once -- sh -c "xargs -L 1 curl -sS -o /dev/null --cacert '$work/ca.pem' <'$work/curl-$n'")
      python3 $m row "$tsv" "$n" "curl in sequence" wall_ms "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["wall_ms"])' "$seq_run")"
    fi
    echo "  $n routes: load average $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  python3 $m table "$tsv"
  scripts/bench/plot.sh "$tsv" docs/bench/route-check.png "route-check vs curl (16 in parallel), by routes (HTTPS + redirect each)" >/dev/null
  echo "wrote $tsv and docs/bench/route-check.png"
  exit 0
fi

args=(--connect "127.0.0.1:$tls" --connect-http "127.0.0.1:$plain" --ca "$work/ca.pem" --quiet --check)
for n in "${names[@]}"; do args+=(--route "$n"); done
# Sanity: every route must be up, or the comparison means nothing.
"$bin" "${args[@]}" || { echo "route-check found problems on the bench proxy (exit $?)" >&2; exit 70; }

cat >"$work/curl.sh" <<EOF
#!/bin/sh
for n in ${names[*]}; do
  curl -sS -o /dev/null --cacert $work/ca.pem --connect-to \$n:443:127.0.0.1:$tls https://\$n/ || exit 2
  curl -sS -o /dev/null --connect-to \$n:80:127.0.0.1:$plain http://\$n/ || exit 2
done
EOF
cat >"$work/curl-https.sh" <<EOF
#!/bin/sh
for n in ${names[*]}; do
  curl -sS -o /dev/null --cacert $work/ca.pem --connect-to \$n:443:127.0.0.1:$tls https://\$n/ || exit 2
done
EOF
chmod +x "$work/curl.sh" "$work/curl-https.sh"

rc=$(python3 $m run "$runs" -- "$bin" "${args[@]}")
rc_https=$(python3 $m run "$runs" -- "$bin" "${args[@]}" --no-redirect-check)
cu=$(python3 $m run "$runs" -- "$work/curl.sh")
cu_https=$(python3 $m run "$runs" -- "$work/curl-https.sh")

python3 - "$routes" "$rc" "$cu" "$rc_https" "$cu_https" <<'PY'
import json, sys
n = sys.argv[1]
rc, cu, rch, cuh = (json.loads(a) for a in sys.argv[2:])
def line(what, r):
    return f"{what:44s} median {r['wall_ms_median']:8.1f} ms   peak RSS {r['rss_kib_max']/1024:5.1f} MiB   ({r['runs']} runs)"
print(line(f"route-check, {n} routes (HTTPS + redirect)", rc))
print(line(f"curl in sequence, {n} routes (2 requests each)", cu))
print(f"ratio (curl / route-check)                   wall {cu['wall_ms_median']/rc['wall_ms_median']:.1f}x")
print(line(f"route-check, {n} routes, HTTPS only", rch))
print(line(f"curl in sequence, {n} routes, HTTPS only", cuh))
print(f"ratio (curl / route-check)                   wall {cuh['wall_ms_median']/rch['wall_ms_median']:.1f}x")
PY
