#!/usr/bin/env python3
"""The example app: answers POST /ask by walking the Fusebox chain `llm`
(openai → anthropic → ollama), calling each provider with plain urllib.

Usage: app.py PORT FUSEBOX_SOCKET OPENAI_PORT ANTHROPIC_PORT OLLAMA_PORT
"""
import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "..", "clients", "python"))
from fusebox import ChainExhausted, Fusebox  # noqa: E402

PORT, SOCKET = int(sys.argv[1]), sys.argv[2]
ENDPOINTS = {
    "openai": f"http://127.0.0.1:{sys.argv[3]}/v1/chat/completions",
    "anthropic": f"http://127.0.0.1:{sys.argv[4]}/v1/messages",
    "ollama": f"http://127.0.0.1:{sys.argv[5]}/api/chat",
}
fb = Fusebox(SOCKET)


def call(provider: str, prompt: str) -> str:
    request = urllib.request.Request(
        ENDPOINTS[provider], data=json.dumps({"messages": [{"role": "user", "content": prompt}]}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    # urllib's HTTPError has .status and .headers: the client reports the status and Retry-After.
    with urllib.request.urlopen(request, timeout=1.0) as response:
        return json.loads(response.read())


def ask(prompt: str):
    for attempt in fb.chain("llm"):
        with attempt:
            return attempt.breaker, call(attempt.breaker, prompt)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        prompt = json.loads(self.rfile.read(length) or b"{}").get("prompt", "")
        try:
            provider, _ = ask(prompt)
            status, body = 200, {"provider": provider}
        except ChainExhausted as error:
            status, body = 503, {"error": str(error)}
        except Exception as error:  # every provider failed: the user sees an error
            status, body = 502, {"error": f"{type(error).__name__}: {error}"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
