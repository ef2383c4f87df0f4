#!/usr/bin/env python3
"""Soak: the sidecar under steady load from several client processes, with
periodic provider faults, SIGHUP reloads and one SIGKILL and restart; then the
checks that nothing was lost and nothing grows.

Usage: scripts/soak.py [SECONDS] [path/to/fusebox]     (CI: 180; documented runs: hours)

Checks: RSS has no growth trend after warm-up; open descriptors back to their
baseline; every transition a subscriber saw is in the store and in the log
(except those in the last flush interval before the SIGKILL); PRAGMA
integrity_check ok; fusebox_transitions_total equals the store's count for
the run after the restart.
"""
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DURATION = int(sys.argv[1]) if len(sys.argv) > 1 else 180
FUSEBOX = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, ".build", "debug", "fusebox")
BREAKERS = ["openai", "anthropic", "ollama", "mistral"]
CLIENTS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(work, port, open_duration):
    return f"""
socket: {work}/fusebox.sock
admin_socket: {work}/fusebox-admin.sock
http: 127.0.0.1:{port}
store: {work}/fusebox.db
log: {work}/fusebox.log
instance: soak
defaults:
  trip: {{ consecutive_failures: 5 }}
  open: {{ duration: {open_duration}, jitter: 0.1, backoff: {{ multiplier: 1.5, max: 5s }} }}
  permit_ttl: 5s
breakers: {{ {", ".join(f"{b}: {{}}" for b in BREAKERS)} }}
chains: {{ llm: [{", ".join(BREAKERS)}] }}
"""


def client(path, deadline, counter):
    """Routes along the chain; a breaker 'fails' during its fault window."""
    rng = random.Random(os.getpid())
    sock = None
    buffer = b""
    while time.time() < deadline:
        try:
            if sock is None:
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(path)
                buffer = b""

            def ask(message):
                nonlocal buffer
                sock.sendall(json.dumps(message).encode() + b"\n")
                while b"\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\n")
                return json.loads(line)

            answer = ask({"op": "route", "chain": "llm"})
            if answer.get("allowed"):
                breaker = answer["breaker"]
                # Each breaker has a fault window of 8 s every 40 s, staggered.
                phase = (time.time() + 10 * BREAKERS.index(breaker)) % 40
                failing = phase < 8 and rng.random() < 0.9
                ask({"op": "report", "permit": answer["permit"],
                     "status": 503 if failing else 200, "latency_ms": rng.uniform(5, 50)})
            with counter.get_lock():
                counter.value += 1
        except (OSError, ValueError, KeyError):
            if sock:
                sock.close()
            sock = None
            time.sleep(0.1)  # the sidecar is restarting
    if sock:
        sock.close()


class Subscriber(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.seen = []
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.path)
                    s.sendall(b'{"op":"subscribe"}\n')
                    reader = s.makefile("rb")
                    reader.readline()
                    for line in reader:
                        event = json.loads(line)
                        if event.get("event") == "transition":
                            self.seen.append((event["breaker"], event["generation"], event["timestamp"], time.time()))
            except (OSError, ValueError):
                time.sleep(0.1)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    work = tempfile.mkdtemp(prefix="fusebox-soak-")
    port = free_port()
    path = f"{work}/fusebox.sock"
    with open(f"{work}/fusebox.yaml", "w") as f:
        f.write(config(work, port, "2s"))

    def start():
        process = subprocess.Popen([FUSEBOX, "serve", "--config", f"{work}/fusebox.yaml"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                return process
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the sidecar did not start")

    sidecar = start()
    subscriber = Subscriber(path)
    subscriber.start()
    deadline = time.time() + DURATION
    counter = multiprocessing.Value("l", 0)
    workers = [multiprocessing.Process(target=client, args=(path, deadline, counter)) for _ in range(CLIENTS)]
    for w in workers:
        w.start()

    kill_at = time.time() + DURATION * 0.4
    killed_at = None
    restart_at = None
    samples = []
    hups = 0
    next_hup = time.time() + 20
    baseline_fds = None
    while time.time() < deadline:
        time.sleep(1)
        now = time.time()
        if killed_at is None and now >= kill_at:
            killed_at = now
            sidecar.send_signal(signal.SIGKILL)
            sidecar.wait()
            sidecar = start()
            restart_at = time.time()
            samples = []  # a new process: start the RSS trend afresh
        if now >= next_hup:
            with open(f"{work}/fusebox.yaml", "w") as f:  # alternate the open duration
                f.write(config(work, port, "2s" if hups % 2 else "3s"))
            sidecar.send_signal(signal.SIGHUP)
            hups += 1
            next_hup = now + 20
        samples.append((now, rss_kib(sidecar.pid)))
        if baseline_fds is None and restart_at and now - restart_at > 5:
            baseline_fds = fds(sidecar.pid)
    for w in workers:
        w.join()
    decisions = counter.value
    time.sleep(2)  # let timers and the store settle
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    final_fds = fds(sidecar.pid)
    subscriber.stop = True
    sidecar.send_signal(signal.SIGTERM)
    code = sidecar.wait(timeout=20)

    db = sqlite3.connect(f"{work}/fusebox.db")
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    stored = {(b, g, t) for b, g, t in db.execute("SELECT breaker, generation, timestamp FROM transitions")}
    # The restarted process's own start, as it recorded it: its counters began there.
    restart_ms = db.execute("SELECT max(started_ms) FROM runs").fetchone()[0]
    stored_after_restart = db.execute("SELECT count(*) FROM transitions WHERE at_ms >= ?", (restart_ms,)).fetchone()[0]
    logged = set()
    with open(f"{work}/fusebox.log") as f:
        for line in f:
            event = json.loads(line)  # every log line must be JSON
            if event.get("event") == "transition":
                logged.add((event["breaker"], event["generation"], event["timestamp"]))
    crash_window = 1.0  # seconds before the SIGKILL in which the last flush may be lost
    missing_store = [s for s in subscriber.seen if (s[0], s[1], s[2]) not in stored
                     and not (killed_at - crash_window <= s[3] <= killed_at + 0.5)]
    missing_log = [s for s in subscriber.seen if (s[0], s[1], s[2]) not in logged
                   and not (killed_at - crash_window <= s[3] <= killed_at + 0.5)]
    in_window = [s for s in subscriber.seen if killed_at - crash_window <= s[3] <= killed_at + 0.5
                 and (s[0], s[1], s[2]) not in stored]
    counted = sum(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("fusebox_transitions_total{"))

    # RSS trend: after warm-up, the last third of the samples against the middle third.
    warm = [r for t, r in samples if t - samples[0][0] > 10] if samples else []
    third = max(1, len(warm) // 3)
    middle = sum(warm[third:2 * third]) / max(1, len(warm[third:2 * third])) if warm else 0
    last = sum(warm[-third:]) / third if warm else 0

    print(f"soak: {DURATION}s, {CLIENTS} client processes, {decisions} routed calls ({decisions / DURATION:.0f}/s), "
          f"{hups} reloads, 1 SIGKILL + restart")
    print(f"transitions seen by the subscriber: {len(subscriber.seen)}, in the store: {len(stored)}, "
          f"in the log: {len(logged)}; lost in the crash window: {len(in_window)}")
    print(f"RSS middle third {middle / 1024:.1f} MiB, last third {last / 1024:.1f} MiB; "
          f"descriptors {baseline_fds} → {final_fds}")
    checks = [
        ("exit 0 on SIGTERM", code == 0),
        ("PRAGMA integrity_check ok", integrity == "ok"),
        ("every transition seen is in the store (outside the crash window)", not missing_store),
        ("every transition seen is in the log (outside the crash window)", not missing_log),
        (f"fusebox_transitions_total ({int(counted)}) equals the store's count since the restart ({stored_after_restart})",
         int(counted) == stored_after_restart),
        ("RSS shows no growth trend (last third within 10% of the middle third)", last <= middle * 1.10 + 1024),
        ("descriptors back to their baseline", baseline_fds is not None and final_fds <= baseline_fds + 2),
        ("transitions happened", len(subscriber.seen) > 10),
    ]
    failed = 0
    for name, ok in checks:
        print(("ok   " if ok else "FAIL ") + name)
        failed += not ok
    if missing_store:
        print("missing from the store:", missing_store[:5])
    print(f"soak: {len(checks) - failed} passed, {failed} failed")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
