#!/usr/bin/env python3
"""Small measuring helper shared by the benchmark scripts (not a test).

  measure.py run  RUNS -- CMD...   run CMD RUNS times: median and min wall ms, median CPU ms,
                                   median/max peak RSS KiB
  measure.py turns RUNS SH_A SH_B  run the shell commands A and B in turn, RUNS times
                                   each (a change in the machine's load hits both):
                                   median and min wall ms and median CPU ms (user+sys)
                                   of each, as {"a": .., "b": ..}
  measure.py http RUNS URL         GET URL RUNS times: median wall ms, body bytes
  measure.py cpu  PID SECONDS      CPU used by PID (and its threads) over SECONDS, % of one core
  measure.py hwm  PID              peak RSS (VmHWM) of a running process, KiB
  measure.py once -- CMD...        run CMD once (for commands that change state, such as
                                   a backup): wall ms and peak RSS KiB of that one run
  measure.py pair RUNS TSV SIZE NAME_A SH_A NAME_B SH_B
                                   scale mode: `turns` of A and B, and their median (and
                                   fastest) wall ms, CPU ms and peak RSS MiB appended to TSV as rows of
                                   size, tool, metric, value (the input of plot.sh)
  measure.py scrape RUNS TSV SIZE NAME_A NAME_B URL PID -- CMD...
                                   scale mode against a running server: CMD (A) and one GET
                                   of URL (B) in turn, RUNS times each; A's wall, CPU (wait4)
                                   and peak RSS (GNU time, a separate run), B's wall, the
                                   server PID's CPU per GET (/proc ticks over all GETs) and
                                   its VmHWM, appended to TSV
  measure.py row TSV SIZE NAME METRIC VALUE   append one such row
  measure.py table TSV [--md]      per size and metric: each tool's value and the ratio of
                                   the first tool to the second (text, or a Markdown table)

In `turns` and `pair` the peak RSS is GNU time's %M for the shell that ran the command:
the largest single process among those it waited for (with `xargs -P` the largest curl,
not the sum of those running at once).

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


def timed(cmd):
    """Runs cmd once: its wall time and CPU time in ms; exits when it failed (not 0, 1, 2)."""
    t = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = (time.perf_counter() - t) * 1000
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1, 2):
        sys.exit(f"measure.py: {cmd} exited {code}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def run(runs, cmd):
    walls, cpus, rss = [], [], []
    for _ in range(runs):
        wall, cpu = timed(cmd)
        walls.append(wall)
        cpus.append(cpu)
        with tempfile.NamedTemporaryFile("r") as out:
            subprocess.call(["/usr/bin/time", "-f", "%M", "-o", out.name] + cmd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rss.append(int(out.read().split()[-1]))
    return {"runs": runs, "wall_ms_median": round(statistics.median(walls), 3),
            "wall_ms_min": round(min(walls), 3), "cpu_ms_median": round(statistics.median(cpus), 3),
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
    walls, cpus, rss = {"a": [], "b": []}, {"a": [], "b": []}, {"a": [], "b": []}
    for _ in range(runs):
        for key, cmd in (("a", a), ("b", b)):
            with tempfile.NamedTemporaryFile("r") as out:
                t = time.perf_counter()
                # GNU time forks the shell from its own small image, so %M is not Python's.
                child = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", out.name, "sh", "-c", cmd],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                # The shell's usage includes the processes it waited for (both ends of a pipe).
                _, status, usage = os.wait4(child.pid, 0)
                walls[key].append((time.perf_counter() - t) * 1000)
                cpus[key].append((usage.ru_utime + usage.ru_stime) * 1000)
                rss[key].append(int((out.read().split() or ["0"])[-1]))
            code = child.returncode = os.waitstatus_to_exitcode(status)
            if code not in (0, 1, 2):
                sys.exit(f"measure.py: {cmd} exited {code}")
    return {k: {"runs": runs, "wall_ms_median": round(statistics.median(w), 3),
                "wall_ms_min": round(min(w), 3),
                "cpu_ms_median": round(statistics.median(cpus[k]), 3),
                "rss_kib_median": int(statistics.median(rss[k]))} for k, w in walls.items()}


def append_row(tsv, size, name, metric, value):
    with open(tsv, "a") as f:
        f.write(f"{size}\t{name}\t{metric}\t{value}\n")


def pair(runs, tsv, size, name_a, a, name_b, b):
    r = turns(runs, a, b)
    for key, name in (("a", name_a), ("b", name_b)):
        append_row(tsv, size, name, "wall_ms", r[key]["wall_ms_median"])
        append_row(tsv, size, name, "wall_ms_fastest", r[key]["wall_ms_min"])
        append_row(tsv, size, name, "cpu_ms", r[key]["cpu_ms_median"])
        append_row(tsv, size, name, "rss_mib", round(r[key]["rss_kib_median"] / 1024, 2))
    return r


def scrape(runs, tsv, size, name_a, name_b, url, pid, cmd):
    walls, cpus, gets = [], [], []
    server_cpu = 0
    for _ in range(runs):
        wall, cpu = timed(cmd)
        walls.append(wall)
        cpus.append(cpu)
        c0 = ticks(pid)
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
        gets.append((time.perf_counter() - t) * 1000)
        server_cpu += ticks(pid) - c0
    rss_a = once(cmd)["rss_kib"]
    a = {"wall_ms": statistics.median(walls), "wall_ms_fastest": min(walls), "cpu_ms": statistics.median(cpus), "rss_mib": rss_a / 1024}
    b = {"wall_ms": statistics.median(gets), "wall_ms_fastest": min(gets), "cpu_ms": server_cpu / os.sysconf("SC_CLK_TCK") * 1000 / runs,
         "rss_mib": hwm(pid)["rss_kib_peak"] / 1024}
    for name, r in ((name_a, a), (name_b, b)):
        for metric, v in r.items():
            append_row(tsv, size, name, metric, round(v, 3))
    return {"a": a, "b": b}


def table(tsv, md):
    """Per size and metric, each tool's value in the order first seen, and tool 1 / tool 2."""
    rows, tools, metrics, sizes = {}, [], [], []
    with open(tsv) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            size, tool, metric, value = line.rstrip("\n").split("\t")
            for seen, x in ((sizes, size), (tools, tool), (metrics, metric)):
                if x not in seen:
                    seen.append(x)
            rows[(size, tool, metric)] = float(value)
    fmt = lambda v: "" if v is None else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")
    head = ["size", "metric"] + tools + ([f"{tools[0]} / {tools[1]}"] if len(tools) > 1 else [])
    out = []
    for size in sizes:
        for metric in metrics:
            vals = [rows.get((size, t, metric)) for t in tools]
            if all(v is None for v in vals):
                continue
            ratio = None
            if len(tools) > 1 and vals[0] is not None and vals[1]:
                ratio = vals[0] / vals[1]
            out.append([size, metric] + [fmt(v) for v in vals] + ([fmt(ratio)] if len(tools) > 1 else []))
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in out:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *out)]
        for r in [head] + out:
            print("  ".join(x.rjust(w) if i > 1 else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths))))


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
    elif what == "pair" and len(sys.argv) == 9:
        print(json.dumps(pair(int(sys.argv[2]), *sys.argv[3:9])))
    elif what == "scrape" and len(sys.argv) > 10 and sys.argv[9] == "--":
        print(json.dumps(scrape(int(sys.argv[2]), *sys.argv[3:8], int(sys.argv[8]), sys.argv[10:])))
    elif what == "row" and len(sys.argv) == 7:
        append_row(*sys.argv[2:7])
    elif what == "table" and len(sys.argv) in (3, 4):
        table(sys.argv[2], sys.argv[3:] == ["--md"])
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
