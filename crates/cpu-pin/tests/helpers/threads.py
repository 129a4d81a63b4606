"""Test helper for cpu-pin: a process with N extra threads, and a chain of DEPTH
descendants that are the same program.

    threads.py N DEPTH [forever] [churn]

Each process prints "ready PID" once its threads run. On stdin, "spawn" starts one
more thread and prints "thread TID". It exits at the end of stdin, or never with
"forever" (for containers, which have no stdin). "churn" keeps starting threads
that end at once, so threads come and go while cpu-pin works.
"""
import os
import subprocess
import sys
import threading
import time

n, depth = int(sys.argv[1]), int(sys.argv[2])
flags = sys.argv[3:]
exe = os.environ.get("CPT_EXE", sys.executable)
stop = threading.Event()
for _ in range(n):
    threading.Thread(target=stop.wait, daemon=True).start()


def churn():
    while True:
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        time.sleep(0.0005)


if "churn" in flags:
    threading.Thread(target=churn, daemon=True).start()
if depth > 0:
    subprocess.Popen([exe, __file__, str(n), str(depth - 1)] + flags)
print(f"ready {os.getpid()}", flush=True)
if "forever" in flags:
    while True:
        time.sleep(3600)
for line in sys.stdin:
    if line.strip() == "spawn":
        t = threading.Thread(target=stop.wait, daemon=True)
        t.start()
        print(f"thread {t.native_id}", flush=True)
