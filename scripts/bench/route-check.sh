#!/usr/bin/env bash
# Benchmark: route-check against curl run in sequence, for the same 50 routes on a
# loopback TLS proxy (nginx, certificates made here with openssl), in one run.
# Each route is an HTTPS request through the proxy to a backend plus the plain-HTTP
# redirect check; curl does the same two requests per route, one route after another.
# Not a test: it prints medians and ratios for the README.
#
#   scripts/bench/route-check.sh [RUNS]     (default 15)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-15}
routes=50
m=scripts/bench/measure.py
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "needs nginx (Debian nginx-light; scripts/test installs it)" >&2; exit 69; }
command -v openssl >/dev/null && command -v curl >/dev/null || { echo "needs openssl and curl" >&2; exit 69; }

cargo build --release -q -p route-check
bin=$PWD/target/release/route-check
work=$(mktemp -d)
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A CA and one leaf for r1..r50.bench.test.
names=(); for i in $(seq 1 $routes); do names+=("r$i.bench.test"); done
san=$(printf 'DNS:%s,' "${names[@]}"); san=${san%,}
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
  server { listen 127.0.0.1:$tls ssl; server_name ${names[*]};
    ssl_certificate $work/leaf.pem; ssl_certificate_key $work/leaf.key;
    location / { proxy_pass http://127.0.0.1:$backend; } }
  server { listen 127.0.0.1:$plain; return 301 https://\$host\$request_uri; }
}
EOF
"$nginx" -p "$work" -e "$work/error.log" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$plain/" && break; sleep 0.05; done

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
