#!/usr/bin/env python3
"""A fake LLM provider on loopback, shaped like one of the real chat endpoints:

    openai     POST /v1/chat/completions
    anthropic  POST /v1/messages
    ollama     POST /api/chat

with a fault switch:  POST /fault?mode=ok|timeout|503|429[&retry_after=SECONDS]
and its counters:     GET /stats  -> {"calls": N, "calls_faulted": M, "times": [...]}

Usage: fake_provider.py NAME PORT
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NAME, PORT = sys.argv[1], int(sys.argv[2])
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "ollama": "/api/chat"}
state = {"mode": "ok", "retry_after": None, "calls": 0, "faulted": 0, "times": []}
lock = threading.Lock()


def reply(prompt: str) -> dict:
    text = f"{NAME} says: {prompt[::-1]}"
    if NAME == "openai":
        return {"id": "chatcmpl-fake", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    if NAME == "anthropic":
        return {"id": "msg_fake", "type": "message", "role": "assistant", "content": [{"type": "text", "text": text}]}
    return {"model": "llama3", "message": {"role": "assistant", "content": text}, "done": True}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def send(self, status: int, body: dict, headers: dict = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/stats"):
            with lock:
                self.send(200, {"calls": state["calls"], "calls_faulted": state["faulted"], "times": state["times"]})
        else:
            self.send(404, {"error": "not found"})

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        if url.path == "/fault":
            query = parse_qs(url.query)
            with lock:
                state["mode"] = query.get("mode", ["ok"])[0]
                state["retry_after"] = query.get("retry_after", [None])[0]
            self.send(200, {"mode": state["mode"]})
            return
        if url.path != PATHS[NAME]:
            self.send(404, {"error": f"{NAME} serves {PATHS[NAME]}"})
            return
        with lock:
            mode, retry_after = state["mode"], state["retry_after"]
            state["calls"] += 1
            state["times"].append(time.time())
            if mode != "ok":
                state["faulted"] += 1
        if mode == "timeout":
            time.sleep(30)  # hang: the caller's timeout ends it
            self.send(504, {"error": "gateway timeout"})
        elif mode in ("503", "429"):
            headers = {"Retry-After": retry_after} if retry_after else {}
            self.send(int(mode), {"error": {"type": "overloaded", "message": f"{NAME} is {mode}"}}, headers)
        else:
            messages = json.loads(body or b"{}").get("messages") or [{"content": ""}]
            time.sleep(0.02)
            self.send(200, reply(str(messages[-1].get("content", ""))))


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
