#!/usr/bin/env bash
# The Pi's view of the tools, measured on x86_64: each aarch64 release binary's size,
# the arm64 package's size, and each tool's peak RSS for one round under qemu-user
# (emulated wall time means nothing; memory does). qemu's own footprint is measured
# with an empty aarch64 program and subtracted. Not a test: figures for the README.
#
#   scripts/bench/aarch64.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
target=aarch64-unknown-linux-gnu
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

scripts/package --target $target --out "$work/deb" >/dev/null
bin=target/$target/release
printf 'int main(void) { return 0; }\n' >"$work/empty.c"
aarch64-linux-gnu-gcc -O2 -o "$work/empty" "$work/empty.c"

rss() { /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1 || true; cat "$work/rss" | tail -1; }
base=$(rss "${qemu[@]}" "$work/empty")

# One representative round of each tool that needs nothing outside this machine.
mkdir -p "$work/src" "$work/repo"; seq 1 20000 >"$work/src/numbers.txt"
seq 1 1000 >"$work/lines.txt"
declare -A round=(
  [pi-thermal]="--root crates/pi-thermal/tests/fixtures/pi5 --format prom"
  [ctr-stats]="--format prom --source cgroup"
  [cpu-pin]="show --pid $$"
  [route-check]="--route pi.invalid --no-redirect-check --timeout 1s"
  [log-tail-ship]="--stdin --stdout"
  [backup-snap]="--repo $work/repo create --job bench $work/src"
)
[ -x "$bin/backup-snap" ] && "${qemu[@]}" "$bin/backup-snap" --repo "$work/repo" init >/dev/null 2>&1 || true

printf '%-14s %12s %22s\n' tool "size (MiB)" "peak RSS under qemu (MiB)"
for m in man/*.1; do
  t=$(basename "$m" .1)
  size=$(stat -c %s "$bin/$t")
  if [ "$t" = log-tail-ship ]; then
    r=$(/usr/bin/time -f %M -o "$work/rss" "${qemu[@]}" "$bin/$t" ${round[$t]} <"$work/lines.txt" >/dev/null 2>&1 || true; tail -1 "$work/rss")
  else
    # shellcheck disable=SC2086
    r=$(rss "${qemu[@]}" "$bin/$t" ${round[$t]:-"--version"})
  fi
  printf '%-14s %12.2f %12.1f (%.1f above qemu alone)\n' "$t" "$(echo "$size / 1048576" | bc -l)" \
    "$(echo "$r / 1024" | bc -l)" "$(echo "($r - $base) / 1024" | bc -l)"
done
printf 'qemu running an empty aarch64 program: %.1f MiB\n' "$(echo "$base / 1024" | bc -l)"
deb=$(ls "$work"/deb/*.deb)
printf '%s: %.2f MiB\n' "$(basename "$deb")" "$(echo "$(stat -c %s "$deb") / 1048576" | bc -l)"
