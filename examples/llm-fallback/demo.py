#!/usr/bin/env python3
"""The five-minute tour: a sidecar, three fake providers, an app that walks the
chain, and load through an outage of the primary. Prints what users saw and
Fusebox's analysis of the incident, and checks the claims.

    ./run.sh            # 30 s healthy, 60 s outage, 60 s after recovery
    ./run.sh --short    # 5 s, 20 s, 15 s (what CI runs)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FUSEBOX = os.environ.get("FUSEBOX_BINARY", os.path.join(ROOT, ".build", "debug", "fusebox"))
SHORT = "--short" in sys.argv
BEFORE, OUTAGE, AFTER = (5, 20, 15) if SHORT else (30, 60, 60)
RATE = 20  # requests per second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes = None, timeout: float = 5):
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(what, condition, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    work = tempfile.mkdtemp(prefix="fusebox-demo-")
    ports = {name: free_port() for name in ("openai", "anthropic", "ollama", "app", "http")}
    config = f"""
socket: {work}/fusebox.sock
admin_socket: {work}/fusebox-admin.sock
http: 127.0.0.1:{ports['http']}
store: {work}/fusebox.db
log: {work}/fusebox.log
instance: demo
defaults:
  trip: {{ consecutive_failures: 5 }}
  open: {{ duration: 3s, jitter: 0, backoff: {{ multiplier: 1 }} }}
breakers: {{ openai: {{}}, anthropic: {{}}, ollama: {{}} }}
chains: {{ llm: [openai, anthropic, ollama] }}
"""
    with open(f"{work}/fusebox.yaml", "w") as f:
        f.write(config)
    processes = []

    def start(*command):
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        start(FUSEBOX, "serve", "--config", f"{work}/fusebox.yaml")
        for name in ("openai", "anthropic", "ollama"):
            start(sys.executable, os.path.join(HERE, "fake_provider.py"), name, str(ports[name]))
        wait_for("the sidecar", lambda: os.path.exists(f"{work}/fusebox.sock") and os.path.exists(f"{work}/fusebox-admin.sock"))
        start(sys.executable, os.path.join(HERE, "app.py"), str(ports["app"]), f"{work}/fusebox.sock",
              str(ports["openai"]), str(ports["anthropic"]), str(ports["ollama"]))
        for name in ("openai", "anthropic", "ollama"):
            wait_for(name, lambda n=name: http("GET", f"http://127.0.0.1:{ports[n]}/stats")[0] == 200)
        wait_for("the app", lambda: http("POST", f"http://127.0.0.1:{ports['app']}/ask", b'{"prompt":"hi"}')[0] == 200)

        results = []  # (time, status, provider)
        lock = threading.Lock()

        def one_request():
            started = time.time()
            status, body = http("POST", f"http://127.0.0.1:{ports['app']}/ask", b'{"prompt":"hello"}', timeout=10)
            provider = json.loads(body).get("provider") if status == 200 else None
            with lock:
                results.append((started, status, provider))

        def load(seconds):
            end = time.time() + seconds
            while time.time() < end:
                threading.Thread(target=one_request, daemon=True).start()
                time.sleep(1 / RATE)

        openai = f"http://127.0.0.1:{ports['openai']}"
        print(f"healthy for {BEFORE}s, openai down (503) for {OUTAGE}s, healed for {AFTER}s, at {RATE} requests/s")
        load(BEFORE)
        outage_start = time.time()
        http("POST", f"{openai}/fault?mode=503")
        load(OUTAGE)
        http("POST", f"{openai}/fault?mode=ok")
        outage_end = time.time()
        load(AFTER)
        time.sleep(2)
        metrics = http("GET", f"http://127.0.0.1:{ports['http']}/metrics")[1].decode()
        stats = json.loads(http("GET", f"{openai}/stats")[1])
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    during = [r for r in results if outage_start <= r[0] < outage_end]
    errors = [r for r in during if r[1] != 200]
    served = {}
    for r in during:
        served[r[2]] = served.get(r[2], 0) + 1
    analysis = json.loads(subprocess.run([FUSEBOX, "analyze", "--db", f"{work}/fusebox.db", "--format", "json"],
                                         capture_output=True, text=True, check=True).stdout)
    text = subprocess.run([FUSEBOX, "analyze", "--db", f"{work}/fusebox.db"], capture_output=True, text=True).stdout
    incidents = [i for i in analysis["incidents"] if "openai" in i["breakers"]]
    first_open = None
    probes = 0
    if incidents:
        events = incidents[0]["events"]
        trips = [e for e in events if e["kind"] == "trip"]
        first_open = trips[0]["at"] if trips else None
        probes = sum(1 for e in events if e["kind"] == "half_open")
    import datetime
    first_open_s = datetime.datetime.fromisoformat(first_open.replace("Z", "+00:00")).timestamp() if first_open else None
    calls_while_open = sum(1 for t in stats["times"] if first_open_s and first_open_s <= t < outage_end)
    fallbacks = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("fusebox_fallbacks_total{"))

    print(f"\nrequests during the outage: {len(during)}, user-visible errors: {len(errors)} "
          f"({100 * len(errors) / max(1, len(during)):.1f}%), served by: {served}")
    print(f"calls to the failing provider during the outage: {stats['calls_faulted']} "
          f"({calls_while_open} after the breaker opened, {probes} probes)")
    print(f"fusebox_fallbacks_total: {fallbacks:g}\n")
    print(text)

    checks = [
        ("the primary's breaker opened and later closed",
         bool(incidents) and incidents[0]["end"] is not None),
        ("user-visible errors under 5% during the outage, the fallback serving",
         len(errors) < 0.05 * len(during) and served.get("anthropic", 0) > 0),
        ("calls to the failing provider while open were only probes", calls_while_open <= probes),
        ("the incident appears in fusebox analyze --format json", bool(incidents)),
        ("fusebox_fallbacks_total counted the fallbacks", fallbacks >= served.get("anthropic", 0) > 0),
    ]
    failed = 0
    for name, ok in checks:
        print(("ok   " if ok else "FAIL ") + name)
        failed += not ok
    print(f"llm-fallback: {len(checks) - failed} passed, {failed} failed")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
