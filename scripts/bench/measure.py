#!/usr/bin/env python3
"""Small measuring helper shared by the benchmark scripts (not a test).

  measure.py run  RUNS -- CMD...   run CMD RUNS times: median wall ms, median/max peak RSS KiB
  measure.py turns RUNS SH_A SH_B  run the shell commands A and B in turn, RUNS times
                                   each (a change in the machine's load hits both):
                                   median and min wall ms and median CPU ms (user+sys)
                                   of each, as {"a": .., "b": ..}
  measure.py http RUNS URL         GET URL RUNS times: median wall ms, body bytes
  measure.py cpu  PID SECONDS      CPU used by PID (and its threads) over SECONDS, % of one core
  measure.py hwm  PID              peak RSS (VmHWM) of a running process, KiB
  measure.py once -- CMD...        run CMD once (for commands that change state, such as
                                   a backup): wall ms and peak RSS KiB of that one run

Each prints one JSON object. Wall time comes from a monotonic clock around the child.
Peak RSS comes from GNU time run separately (its %M is the child's maximum resident set):
a child forked straight from Python would count Python's own pages before its exec.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def run(runs, cmd):
    walls, rss = [], []
    for _ in range(runs):
        t = time.perf_counter()
        code = subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append((time.perf_counter() - t) * 1000)
        if code not in (0, 1, 2):
            sys.exit(f"measure.py: {cmd} exited {code}")
        with tempfile.NamedTemporaryFile("r") as out:
            subprocess.call(["/usr/bin/time", "-f", "%M", "-o", out.name] + cmd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rss.append(int(out.read().split()[-1]))
    return {"runs": runs, "wall_ms_median": round(statistics.median(walls), 3),
            "rss_kib_median": int(statistics.median(rss)), "rss_kib_max": max(rss)}


def http(runs, url):
    walls, size = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as r:
            size = len(r.read())
        walls.append((time.perf_counter() - t) * 1000)
    return {"runs": runs, "wall_ms_median": round(statistics.median(walls), 3), "bytes": size}


def turns(runs, a, b):
    walls, cpus = {"a": [], "b": []}, {"a": [], "b": []}
    for _ in range(runs):
        for key, cmd in (("a", a), ("b", b)):
            t = time.perf_counter()
            child = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # The shell's usage includes the processes it waited for (both ends of a pipe).
            _, status, usage = os.wait4(child.pid, 0)
            walls[key].append((time.perf_counter() - t) * 1000)
            cpus[key].append((usage.ru_utime + usage.ru_stime) * 1000)
            code = child.returncode = os.waitstatus_to_exitcode(status)
            if code not in (0, 1, 2):
                sys.exit(f"measure.py: {cmd} exited {code}")
    return {k: {"runs": runs, "wall_ms_median": round(statistics.median(w), 3),
                "wall_ms_min": round(min(w), 3),
                "cpu_ms_median": round(statistics.median(cpus[k]), 3)} for k, w in walls.items()}


def once(cmd):
    with tempfile.NamedTemporaryFile("r") as out:
        t = time.perf_counter()
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", out.name] + cmd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = (time.perf_counter() - t) * 1000
        if code not in (0, 1, 2):
            sys.exit(f"measure.py: {cmd} exited {code}")
        return {"wall_ms": round(wall, 3), "rss_kib": int(out.read().split()[-1])}


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu(pid, seconds):
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), ticks(pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), ticks(pid)
    return {"seconds": round(t1 - t0, 1), "cpu_seconds": (c1 - c0) / hz,
            "cpu_percent": round((c1 - c0) / hz / (t1 - t0) * 100, 4)}


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss_kib" if line.startswith("VmRSS") else "rss_kib_peak"] = int(line.split()[1])
    return out


def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return {"rss_kib_peak": int(line.split()[1])}
    return {"rss_kib_peak": None}


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "run" and "--" in sys.argv:
        print(json.dumps(run(int(sys.argv[2]), sys.argv[sys.argv.index("--") + 1:])))
    elif what == "turns" and len(sys.argv) == 5:
        print(json.dumps(turns(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
    elif what == "once" and "--" in sys.argv:
        print(json.dumps(once(sys.argv[sys.argv.index("--") + 1:])))
    elif what == "http":
        print(json.dumps(http(int(sys.argv[2]), sys.argv[3])))
    elif what == "cpu":
        print(json.dumps(cpu(int(sys.argv[2]), float(sys.argv[3]))))
    elif what == "hwm":
        print(json.dumps(hwm(int(sys.argv[2]))))
    elif what == "rss" and len(sys.argv) == 3:
        print(json.dumps(rss(int(sys.argv[2]))))
    else:
        sys.exit(__doc__)
