#!/usr/bin/env python3
"""The real `openai` SDK, streaming, with a fallback to a second
OpenAI-compatible base URL (Ollama speaks the same protocol): the chain `llm`
walks openai → ollama; each attempt streams its answer to the end inside the
attempt, so a stream that dies halfway is a failed attempt and the next
provider answers. Two local stubs stand in for the providers; midway the
primary starts dying after the first chunk of every stream.

Usage: examples/openai-sdk/run.py   (FUSEBOX_BINARY: the fusebox binary)
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))

import openai  # noqa: E402

from fusebox import Fusebox  # noqa: E402

BINARY = os.environ.get("FUSEBOX_BINARY", str(ROOT / ".build" / "debug" / "fusebox"))
THRESHOLD = 3


class StreamingProvider:
    """An OpenAI-compatible /v1/chat/completions that streams `words`; when
    `dying`, it closes the connection after the first chunk."""

    def __init__(self, name):
        self.name = name
        self.dying = False
        self.streams = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                provider.streams += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for index, word in enumerate(["hello ", "from ", provider.name]):
                    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                    data = f"data: {json.dumps(chunk)}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    if provider.dying and index == 0:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                data = b"data: [DONE]\n\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def ask(fb, clients, question):
    """Streams one answer along the chain; the provider that answered, and the text."""
    for attempt in fb.chain("llm"):
        with attempt:
            stream = clients[attempt.breaker].chat.completions.create(
                model="m", messages=[{"role": "user", "content": question}], stream=True)
            return attempt.breaker, "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    raise RuntimeError("unreachable: chain raises when it runs out")


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-openai-sdk-"))
    (work / "fusebox.yaml").write_text(f"""
socket: ./fusebox.sock
admin_socket: off
http: off
store: off
defaults:
  trip: {{ consecutive_failures: {THRESHOLD}, window: off }}
  open: {{ duration: 60s, jitter: 0 }}
breakers: {{ openai: {{}}, ollama: {{}} }}
chains: {{ llm: [openai, ollama] }}
""")
    sidecar = subprocess.Popen([BINARY, "serve", "--config", "fusebox.yaml"], cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    primary, fallback = StreamingProvider("openai"), StreamingProvider("ollama")
    try:
        for _ in range(200):
            if (work / "fusebox.sock").exists():
                break
            time.sleep(0.05)
        fb = Fusebox(str(work / "fusebox.sock"))
        # Plain SDK clients: the chain guards each attempt (a transport on them would ask twice).
        clients = {"openai": openai.OpenAI(base_url=primary.url, api_key="-", max_retries=0),
                   "ollama": openai.OpenAI(base_url=fallback.url, api_key="-", max_retries=0)}
        before = [ask(fb, clients, "hi") for _ in range(5)]
        primary.dying = True
        during = [ask(fb, clients, "hi") for _ in range(20)]
        state = fb.status("openai")[0]["state"]
        fb.close()
    finally:
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=20)
    print(f"openai-sdk example: before {before[0]}; after the primary started dying mid-stream: "
          f"{sum(1 for b, _ in during if b == 'ollama')} of {len(during)} answered by the fallback, "
          f"the primary saw {primary.streams - 5} more streams, its breaker is {state}")
    checks = [
        ("answers streamed from the primary while it was well", all(b == "openai" and t == "hello from openai" for b, t in before)),
        ("every later question answered, in full, by the fallback", all(b == "ollama" and t == "hello from ollama" for b, t in during)),
        (f"the dying primary saw only {THRESHOLD} streams before its breaker opened", primary.streams - 5 == THRESHOLD and state == "open"),
    ]
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
