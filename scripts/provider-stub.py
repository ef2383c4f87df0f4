#!/usr/bin/env python3
"""A provider stand-in for the probe and routing tests: a real HTTP server on
loopback whose behaviour the test changes while it runs.

Prints its port on the first line of standard output, then serves until stdin
closes (so it never outlives the test that started it).

  POST /_control  {"status": 200, "delay_ms": 50, "hang": false}  changes the behaviour
  GET  /_stats    {"requests": N, "authorization": [...]}          what it has seen
Every other path answers `status` after `delay_ms` (or never, with `hang`);
a path under /hang/ never answers, whatever the state says.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"status": 200, "delay_ms": 0, "hang": False}
seen = {"requests": 0, "authorization": [], "times": []}
lock = threading.Lock()
started = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the test reads /_stats
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/_control":
            with lock:
                state.update(json.loads(body or b"{}"))
                answer = dict(state)
            return self._answer(200, answer)
        if self.path == "/_stats":
            with lock:
                answer = dict(seen)
            return self._answer(200, answer)
        with lock:
            seen["requests"] += 1
            seen["times"].append(round(time.monotonic() - started, 3))
            auth = self.headers.get("Authorization")
            if auth is not None:
                seen["authorization"].append(auth)
            status, delay, hang = state["status"], state["delay_ms"], state["hang"]
        if hang or self.path.startswith("/hang/"):
            time.sleep(3600)
            return None
        if delay:
            time.sleep(delay / 1000)
        return self._answer(status, {"status": status})

    do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = _serve


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # the test closed our stdin (or died): stop


if __name__ == "__main__":
    main()
