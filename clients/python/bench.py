#!/usr/bin/env python3
"""What the Python client's guard costs an app, in one run, per call (p50 and
p99 of single calls):

- fb.guard on the fast path (the sidecar's state file, a closed breaker);
- fb.guard asking the socket (fast_path=False);
- a raw socket acquire+report, as bare as Python gets;
- pybreaker with its Redis storage over a Unix socket, the usual way to share
  one breaker between workers (needs `redis-server` on PATH and the `redis`
  and `pybreaker` packages; it starts its own server);
- pybreaker in process, sharing nothing, for scale.

Needs a running sidecar whose breaker `openai` has no budget:
    python3 bench.py SOCKET [N]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fusebox import Fusebox  # noqa: E402

SOCKET = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000


def timed(call, n):
    """Per-call times in µs, sorted (after a warm-up of n/10 calls)."""
    for _ in range(n // 10):
        call()
    clock = time.perf_counter_ns
    times = []
    for _ in range(n):
        started = clock()
        call()
        times.append(clock() - started)
    times.sort()
    return [t / 1000 for t in times]


def guard(fb):
    def call():
        with fb.guard("openai"):
            pass
    return call


def raw_round_trip():
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCKET)
    f = s.makefile("rb")

    def call():
        s.sendall(b'{"op":"acquire","breaker":"openai"}\n')
        permit = json.loads(f.readline())["permit"]
        s.sendall(b'{"op":"report","permit":"' + permit.encode() + b'","outcome":"success"}\n')
        f.readline()
    return call


def start_redis():
    """A redis-server of our own on a Unix socket, or the reason there is none."""
    if shutil.which("redis-server") is None:
        return None, "redis-server is not on PATH (Debian: apt install redis-server)"
    try:
        import pybreaker  # noqa: F401
        import redis  # noqa: F401
    except ImportError as missing:
        return None, f"{missing.name} is not installed (pip install pybreaker redis)"
    folder = tempfile.mkdtemp(prefix="fusebox-bench-redis-")
    path = os.path.join(folder, "redis.sock")
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", path, "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(path):
            return (server, folder, path), None
        time.sleep(0.01)
    server.kill()
    return None, "redis-server did not start"


def pybreaker_call(storage=None):
    import pybreaker
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60, state_storage=storage) if storage \
        else pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)

    def call():
        with breaker.calling():
            pass
    return call


def line(label, times, baseline=None):
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    ratio = f"  ×{p50 / baseline:.3f} of pybreaker+Redis" if baseline else ""
    print(f"{label:<44} p50 {p50:8.1f} µs   p99 {p99:8.1f} µs{ratio}")
    return p50


fast_client = Fusebox(SOCKET)
with fast_client.guard("openai"):
    pass
if fast_client.stats()["fast_path"] != 1:
    sys.exit(f"no fast path: is {SOCKET}.state there, and does 'openai' have no budget?")
results = {
    "fb.guard, fast path": timed(guard(fast_client), N),
    "fb.guard, asking the socket": timed(guard(Fusebox(SOCKET, fast_path=False)), N),
    "raw socket acquire+report": timed(raw_round_trip(), N),
}
redis_server, missing = start_redis()
if redis_server:
    import pybreaker
    import redis
    process, folder, path = redis_server
    try:
        storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, redis.Redis(unix_socket_path=path), namespace="openai")
        results["pybreaker + Redis (Unix socket)"] = timed(pybreaker_call(storage), N)
    finally:
        process.terminate()
        shutil.rmtree(folder, ignore_errors=True)
try:
    results["pybreaker in process (shares nothing)"] = timed(pybreaker_call(), N)
except ImportError:
    pass

redis_p50 = results.get("pybreaker + Redis (Unix socket)", [None])[len(results.get("pybreaker + Redis (Unix socket)", [0])) // 2]
print(f"{N} calls each, Python {sys.version.split()[0]}")
for label, times in results.items():
    line(label, times, redis_p50)
if redis_p50 is None:
    print(f"pybreaker + Redis not measured: {missing}")
