#!/usr/bin/env python3
"""What the Python client's guard costs an app, against a raw socket round
trip to the same sidecar in the same run (and in-process pybreaker, if
installed, for context). Needs a running sidecar: bench.py SOCKET [N]."""
import json
import socket
import sys
import threading
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from fusebox import Fusebox  # noqa: E402

SOCKET = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000


def raw_round_trips(n):
    """acquire + report over one socket, as bare as Python gets."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCKET)
    f = s.makefile("rb")
    start = time.perf_counter()
    for _ in range(n):
        s.sendall(b'{"op":"acquire","breaker":"openai"}\n')
        permit = json.loads(f.readline())["permit"]
        s.sendall(b'{"op":"report","permit":"' + permit.encode() + b'","outcome":"success"}\n')
        f.readline()
    return (time.perf_counter() - start) / n


def guard_calls(fb, n):
    start = time.perf_counter()
    for _ in range(n):
        with fb.guard("openai"):
            pass
    return (time.perf_counter() - start) / n


def threaded(fb, n, threads=8):
    def work():
        for _ in range(n // threads):
            with fb.guard("openai"):
                pass
    start = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return (time.perf_counter() - start) / n


raw = raw_round_trips(N)
fb = Fusebox(SOCKET)
guard = guard_calls(fb, N)
eight = threaded(fb, N)
print(f"raw socket acquire+report:            {raw * 1e6:7.1f} µs per call (baseline)")
print(f"fb.guard around a no-op, sequential:  {guard * 1e6:7.1f} µs per call  (×{guard / raw:.2f} baseline)")
print(f"fb.guard, 8 threads (wall per call):  {eight * 1e6:7.1f} µs per call  (×{eight / raw:.2f} baseline)")
try:
    import pybreaker
    breaker = pybreaker.CircuitBreaker()
    start = time.perf_counter()
    for _ in range(N):
        breaker.call(lambda: None)
    print(f"pybreaker in process (no sidecar):    {(time.perf_counter() - start) / N * 1e6:7.1f} µs per call")
except ImportError:
    print("pybreaker not installed: pip install pybreaker for the in-process comparison")
