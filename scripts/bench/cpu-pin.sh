#!/usr/bin/env bash
# Benchmark: cpu-pin against taskset, and the reason cpu-pin exists. Not a test: it
# prints medians, ratios and latency percentiles for the README.
#
# 1. Pin 200 processes with 4 threads each: `cpu-pin apply` with a one-rule plan,
#    against a shell loop of `taskset -a -p -c LIST PID` over the same processes, in
#    one run. Each run moves every thread (the lists alternate between the first
#    and the last CPU), so both do the full work; a no-op `apply` (nothing to
#    change) is timed too.
# 2. Wake-up latency of a small periodic task (sleeps 1 ms, 5000 times) with no
#    load, with a CPU hog (two busy processes per CPU, like an LLM runner with too
#    many threads) unpinned, then with the hog pinned to the first CPU and the task
#    to the last one by `cpu-pin apply`: the 50th and 99th percentiles of how late
#    it woke.
#
#   scripts/bench/cpu-pin.sh [RUNS] [PROBE_WAKEUPS]      (defaults 11 and 5000; RUNS=0 skips part 1)
#   scripts/bench/cpu-pin.sh --scale 100,1000,5000 [RUNS]  (RUNS default 11)
#
# --scale: for each total N of threads, 20 processes of N/20 threads each; `cpu-pin
# apply` with a one-rule plan against a shell loop of `taskset -a -p` over the 20, in
# turn (each run moves every thread), then a no-change `apply` and `check`. Prints per
# size wall, CPU and peak RSS of both and the ratio; writes docs/bench/cpu-pin.tsv and
# plots docs/bench/cpu-pin.png.
#
# Every process it pins is one it started (named cpupinbench, cpupinhog,
# cpupinprobe), and all are killed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=
if [ "${1:-}" = --scale ]; then scale=${2:?--scale needs a list such as 100,1000,5000}; shift 2; fi
runs=${1:-11}
wakeups=${2:-5000}
m=scripts/bench/measure.py
command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 69; }
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)

cargo build --release -q -p cpu-pin
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target/release/cpu-pin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$scale" ]; then
  mkdir -p docs/bench
  : >docs/bench/cpu-pin.tsv
  echo "cpu-pin --scale $scale: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $runs turns per size"
fi

"$python" - "$bin" "$work" "$runs" "$wakeups" "$m" "$scale" <<'PY'
import ctypes, json, os, signal, statistics, subprocess, sys, time

bin, work, runs, wakeups, measure = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
scale = [int(x) for x in sys.argv[6].split(",")] if sys.argv[6] else []
cpus = sorted(os.sched_getaffinity(0))
first, last = str(cpus[0]), str(cpus[-1])
libc = ctypes.CDLL(None)

def name(n):
    libc.prctl(15, n.encode(), 0, 0, 0)  # PR_SET_NAME: this thread, and threads it starts

def fork_tree(count, comm, body):
    """Forks `count` children named `comm` that run body(); returns their pids."""
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)
                name(comm)
                body()
            finally:
                os._exit(0)
        pids.append(pid)
    return pids

def idle_threads(extra=3):
    import threading
    for _ in range(extra):
        threading.Thread(target=lambda: signal.pause(), daemon=True).start()
    signal.pause()

def spin():
    while True:
        pass

def kill(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for p in pids:
        try:
            os.waitpid(p, 0)
        except ChildProcessError:
            pass

def threads_of(pid):
    return len(os.listdir(f"/proc/{pid}/task"))

def plan(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path

def timed(cmd, shell=False):
    t = time.perf_counter()
    r = subprocess.run(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ms = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        sys.exit(f"{cmd} failed: {r.stderr.decode()}")
    return ms

# ---- 1. 200 processes x 4 threads ------------------------------------------------
def bench_pinning():
    procs = fork_tree(200, "cpupinbench", idle_threads)
    try:
        deadline = time.monotonic() + 60
        while not all(threads_of(p) == 4 for p in procs):
            if time.monotonic() > deadline:
                sys.exit("the 200 test processes did not start their threads")
            time.sleep(0.05)
        plans = {c: plan(f"{work}/bench-{c}.conf", f"bench comm=cpupinbench cpus={c}\n") for c in (first, last)}
        pidlist = " ".join(map(str, procs))
        loop = f"for p in {pidlist}; do taskset -a -p -c {{}} $p >/dev/null || exit 1; done"
        cp, ts = [], []
        for i in range(runs):
            a, b = (first, last) if i % 2 == 0 else (last, first)
            cp.append(timed([bin, "apply", plans[a], "--quiet"]))
            ts.append(timed(["bash", "-c", loop.format(b)]))
        # Every thread of every process is where the last run put it.
        final = int(first if (runs - 1) % 2 else last)
        bad = [t for p in procs for t in map(int, os.listdir(f"/proc/{p}/task")) if os.sched_getaffinity(t) != {final}]
        if bad:
            sys.exit(f"{len(bad)} threads are not on CPU {final}")
        noop = json.loads(subprocess.check_output(
            [sys.executable, measure, "run", str(runs), "--", bin, "apply", plans[str(final)], "--quiet"]))
        check = json.loads(subprocess.check_output(
            [sys.executable, measure, "run", str(runs), "--", bin, "check", plans[str(final)], "--quiet"]))
    finally:
        kill(procs)

    cpm, tsm = statistics.median(cp), statistics.median(ts)
    print(f"pin 200 processes x 4 threads ({runs} runs, each moving all 800 threads)")
    print(f"  cpu-pin apply (one plan rule)        median {cpm:8.1f} ms")
    print(f"  shell loop of taskset -a -p          median {tsm:8.1f} ms")
    print(f"  ratio (taskset / cpu-pin)            {tsm / cpm:8.1f} x faster")
    print(f"  cpu-pin apply, nothing to change     median {noop['wall_ms_median']:8.1f} ms   peak RSS {noop['rss_kib_median'] / 1024:.1f} MiB")
    print(f"  cpu-pin check                        median {check['wall_ms_median']:8.1f} ms")

# ---- --scale: 20 processes of N/20 threads each --------------------------------
def bench_scale():
    tsv = "docs/bench/cpu-pin.tsv"
    row = lambda size, tool, metric, value: subprocess.check_call(
        [sys.executable, measure, "row", tsv, str(size), tool, metric, str(round(value, 3))])
    for n in scale:
        per = max(1, n // 20)
        procs = fork_tree(20, "cpupinbench", lambda: idle_threads(per - 1))
        try:
            deadline = time.monotonic() + 120
            while not all(threads_of(p) == per for p in procs):
                if time.monotonic() > deadline:
                    sys.exit(f"the 20 test processes did not start their {per} threads each")
                time.sleep(0.05)
            plans = {c: plan(f"{work}/bench-{c}.conf", f"bench comm=cpupinbench cpus={c}\n") for c in (first, last)}
            pidlist = " ".join(map(str, procs))
            loop = f"for p in {pidlist}; do taskset -a -p -c {last} $p >/dev/null || exit 3; done"
            # In turn: cpu-pin moves every thread to the first CPU, the loop back to the last.
            subprocess.check_output([sys.executable, measure, "pair", str(runs), tsv, str(n),
                                     "cpu-pin apply", f"{bin} apply {plans[first]} --quiet",
                                     "taskset -a -p loop", loop])
            bad = [t for p in procs for t in map(int, os.listdir(f"/proc/{p}/task")) if os.sched_getaffinity(t) != {int(last)}]
            if bad:
                sys.exit(f"{len(bad)} threads are not on CPU {last}")
            noop = json.loads(subprocess.check_output(
                [sys.executable, measure, "run", str(runs), "--", bin, "apply", plans[last], "--quiet"]))
            check = json.loads(subprocess.check_output(
                [sys.executable, measure, "run", str(runs), "--", bin, "check", plans[last], "--quiet"]))
            row(n, "cpu-pin apply", "noop_apply_wall_ms", noop["wall_ms_median"])
            row(n, "cpu-pin apply", "noop_apply_cpu_ms", noop["cpu_ms_median"])
            row(n, "cpu-pin apply", "noop_apply_rss_mib", noop["rss_kib_median"] / 1024)
            row(n, "cpu-pin apply", "check_wall_ms", check["wall_ms_median"])
            total = sum(threads_of(p) for p in procs)
        finally:
            kill(procs)
        print(f"  {n} threads ({total} counted): load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    subprocess.check_call([sys.executable, measure, "table", tsv])
    subprocess.check_call(["scripts/bench/plot.sh", tsv, "docs/bench/cpu-pin.png",
                           "cpu-pin apply vs a taskset -a -p loop, by threads (20 processes)"], stdout=subprocess.DEVNULL)
    print(f"wrote {tsv} and docs/bench/cpu-pin.png")
    sys.exit(0)

if scale:
    bench_scale()

if runs > 0:
    bench_pinning()

# ---- 2. wake-up latency of a periodic task next to a CPU hog ---------------------
PROBE = r"""
import ctypes, json, sys, time
ctypes.CDLL(None).prctl(15, b"cpupinprobe", 0, 0, 0)
n = int(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
late = []
for _ in range(n):
    t = time.perf_counter_ns()
    time.sleep(0.001)
    late.append((time.perf_counter_ns() - t - 1_000_000) / 1000)
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))]
print(json.dumps({"p50": q(0.50), "p90": q(0.90), "p99": q(0.99)}), flush=True)
"""

def probe(pin_plan=None):
    p = subprocess.Popen([sys.executable, "-c", PROBE, str(wakeups)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    if pin_plan:
        r = subprocess.run([bin, "apply", pin_plan], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"cpu-pin apply failed: {r.stderr}")
        rules = {x["rule"]: x for x in map(json.loads, r.stdout.splitlines()) if x["kind"] == "rule"}
        assert rules["llm"]["targets"] == len(hogs) and rules["probe"]["targets"] == 1, rules
    p.stdin.write("go\n")
    p.stdin.flush()
    out = json.loads(p.stdout.readline())
    p.wait()
    return out

def steal():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[7], sum(v)

load_before = os.getloadavg()[0]
st0 = steal()
hogs = []
reps = 3
quiet = [probe() for _ in range(reps)]
hogs = fork_tree(2 * len(cpus), "cpupinhog", spin)
loaded, pinned = [], []
try:
    time.sleep(0.5)
    layout = plan(f"{work}/layout.conf", f"llm comm=cpupinhog cpus={first}\nprobe comm=cpupinprobe cpus={last}\n")
    for _ in range(reps):
        loaded.append(probe())
        pinned.append(probe(layout))
        for h in hogs:  # unpinned again for the next round
            os.sched_setaffinity(h, cpus)
finally:
    kill(hogs)
st1 = steal()

def med(rs, k):
    return statistics.median(r[k] for r in rs)

print(f"wake-up latency of a 1 ms periodic task: {wakeups} wake-ups, median of {reps} rounds; hog: {len(hogs)} busy processes")
print(f"  (background: load average {load_before:.1f} before the demo, {100 * (st1[0] - st0[0]) / max(1, st1[1] - st0[1]):.1f} % steal during it)")
for label, rs in [("no hog", quiet), ("hog unpinned", loaded), (f"hog pinned to CPU {first}, task to CPU {last}", pinned)]:
    print(f"  {label:38} p50 {med(rs, 'p50'):7.0f} us   p90 {med(rs, 'p90'):7.0f} us   p99 {med(rs, 'p99'):7.0f} us")
print(f"  p99 unpinned / pinned                {med(loaded, 'p99') / med(pinned, 'p99'):7.1f} x")
PY
