#!/usr/bin/env python3
"""The FastAPI example end to end: a real `fusebox serve`, an OpenAI-compatible
provider stub, `uvicorn app:app --workers 4`, and 8 concurrent users. Midway
the provider dies (503 after 200 ms). Checks that the calls reaching the dead
provider are at most the breaker's threshold plus the calls already in flight,
across all four workers, and that every worker served answers before.

Usage: examples/fastapi/run.py   (FUSEBOX_BINARY: the fusebox binary)
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BINARY = os.environ.get("FUSEBOX_BINARY", str(ROOT / ".build" / "debug" / "fusebox"))
THRESHOLD, USERS, WORKERS = 5, 8, 4
COMPLETION = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


class Provider:
    def __init__(self):
        self.dead = False
        self.calls_while_dead = 0
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with provider.lock:
                    dead = provider.dead
                    provider.calls_while_dead += dead
                time.sleep(0.2 if dead else 0.02)
                body = b'{"error":{"message":"down","type":"server_error"}}' if dead else COMPLETION
                self.send_response(503 if dead else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, condition, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"fastapi example: timed out waiting for {what}")


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-fastapi-"))
    (work / "fusebox.yaml").write_text(f"""
socket: ./fusebox.sock
admin_socket: off
http: off
store: off
defaults:
  trip: {{ consecutive_failures: {THRESHOLD}, window: off }}
  open: {{ duration: 60s, jitter: 0 }}
breakers: {{ openai: {{}} }}
""")
    sidecar = subprocess.Popen([BINARY, "serve", "--config", "fusebox.yaml"], cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    provider = Provider()
    port = free_port()
    env = {**os.environ, "FUSEBOX_SOCKET": str(work / "fusebox.sock"), "PROVIDER_URL": provider.url,
           "PYTHONPATH": str(ROOT / "clients" / "python")}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--workers", str(WORKERS), "--port", str(port),
                               "--log-level", "warning"], cwd=HERE, env=env, start_new_session=True)
    answers, refused, failed, workers = 0, 0, 0, set()
    lock = threading.Lock()
    stop = threading.Event()

    def user():
        nonlocal answers, refused, failed
        while not stop.is_set():
            request = urllib.request.Request(f"http://127.0.0.1:{port}/ask", data=b'{"q":"hello"}',
                                             headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    worker = json.loads(response.read())["worker"]
                    with lock:
                        answers += 1
                        workers.add(worker)
            except urllib.error.HTTPError as error:
                with lock:
                    if error.code == 503:
                        refused += 1
                    else:
                        failed += 1
                # A user who just saw an error waits a moment, as clients back off: the bound below counts
                # the calls already in flight when the breaker trips, not retries racing its reports.
                time.sleep(0.01 if error.code == 503 else 0.2)

    try:
        wait("the sidecar", lambda: (work / "fusebox.sock").exists())
        wait("uvicorn", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1).status == 200)
        users = [threading.Thread(target=user, daemon=True) for _ in range(USERS)]
        for thread in users:
            thread.start()
        time.sleep(4)
        with provider.lock:
            provider.dead = True
        time.sleep(4)
        stop.set()
        for thread in users:
            thread.join(timeout=15)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=20)
        provider.server.shutdown()

    reached = provider.calls_while_dead
    print(f"fastapi example: {answers} answers from {len(workers)} workers, then the provider died: "
          f"{reached} calls reached it (threshold {THRESHOLD} + {USERS} in flight), {failed} failed, {refused} refused by the breaker")
    checks = [
        ("all four workers answered while the provider was up", len(workers) == WORKERS),
        (f"calls reaching the dead provider ({reached}) <= threshold + in flight ({THRESHOLD + USERS})", 0 < reached <= THRESHOLD + USERS),
        ("the rest were refused by the breaker without calling it", refused > 0 and failed == reached),
    ]
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
