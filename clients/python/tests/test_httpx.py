"""The httpx transports under the real openai and anthropic SDKs (from PyPI),
against a provider stub on loopback HTTP and the real sidecar."""
from __future__ import annotations

import asyncio
import email.utils
import json
import pathlib
import shutil
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import httpx
import httpx2
import openai
import pytest

from conftest import Sidecar
from fusebox import AsyncFusebox, BreakerOpen, Fusebox
from fusebox import httpx as for_httpx
from fusebox.httpx2 import AsyncTransport, Transport

# Token budgets refill slowly (1,000 a day is 0.01 a second) so a check a few seconds late, under load, still sees the charge.
CONFIG = """
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: off
defaults:
  trip: { consecutive_failures: 5, window: off }
  open: { duration: 1s, jitter: 0, backoff: off, max_retry_after: 1h }
breakers:
  openai: { tokens: { budget: 1000, per: 24h } }
  anthropic: { tokens: { budget: 1000, per: 24h } }
"""

COMPLETION = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}}
MESSAGE = {"id": "m1", "type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": "hi"}],
           "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 5}}


class Provider:
    """An OpenAI- and Anthropic-shaped stub; `mode` says how the next call goes."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0
        #: Models whose requests get a 503 whatever the mode (per-model breakers).
        self.failing_models: set = set()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                provider.calls += 1
                mode = provider.mode
                if provider.failing_models and json.loads(body or b"{}").get("model") in provider.failing_models:
                    mode = "503"
                if mode == "ok":
                    self.json(200, MESSAGE if self.path.endswith("/messages") else COMPLETION)
                elif mode == "503":
                    self.json(503, {"error": {"message": "the engine is overloaded", "type": "server_error"}})
                elif mode == "429-date":
                    when = email.utils.formatdate(time.time() + 600, usegmt=True)
                    self.json(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
                              {"Retry-After": when})
                elif mode in ("stream", "stream-dies", "stream-200", "stream-slow"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                             "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
                    # stream-slow: a slow model, one chunk a second for five seconds.
                    for _ in range({"stream-200": 200, "stream-slow": 5}.get(mode, 3)):
                        self.chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                        if mode != "stream-200":
                            time.sleep(1.0 if mode == "stream-slow" else 0.05)  # pacing: a streaming provider's chunks
                    if mode == "stream-dies":
                        self.connection.shutdown(socket.SHUT_RDWR)  # the provider goes away after 3 chunks
                        return
                    self.chunk(b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")

            def chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def json(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def world():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-httpx-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sidecar = Sidecar(folder, CONFIG.replace("http: off", f"http: 127.0.0.1:{port}")).start()
    sidecar.metrics_url = f"http://127.0.0.1:{port}/metrics"
    provider = Provider()
    fb = Fusebox(sidecar.socket)
    routes = {f"{provider.host}/v1/chat": "openai", f"{provider.host}/v1/messages": "anthropic"}
    http = httpx2.Client(transport=Transport(fb, routes=routes))  # the SDKs take httpx2 clients
    sdk = openai.OpenAI(base_url=f"http://{provider.host}/v1", api_key="test", max_retries=0, http_client=http)
    claude = anthropic.Anthropic(base_url=f"http://{provider.host}", api_key="test", max_retries=0, http_client=http)
    yield sidecar, provider, fb, sdk, claude, routes
    http.close()
    fb.close()
    provider.server.shutdown()
    sidecar.stop()
    shutil.rmtree(folder, ignore_errors=True)


def scrape(sidecar) -> str:
    import urllib.request
    return urllib.request.urlopen(sidecar.metrics_url, timeout=5).read().decode()


def status(fb: Fusebox, breaker: str) -> dict:
    return fb.status(breaker)[0]


def ask(sdk, **extra):
    return sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}], **extra)


def test_a_completion_is_reported_with_the_tokens_it_used(world):
    sidecar, provider, fb, sdk, claude, _ = world
    assert ask(sdk).choices[0].message.content == "hi"
    openai_state = status(fb, "openai")
    assert openai_state["calls_in_window"] == 0 or openai_state["consecutive_failures"] == 0
    assert openai_state["permits_in_flight"] == 0
    assert 1000 - 42 - 1 <= openai_state["token_budget_available"] <= 1000 - 42 + 1, openai_state
    reply = claude.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hello"}])
    assert reply.content[0].text == "hi"
    assert 1000 - 25 - 1 <= status(fb, "anthropic")["token_budget_available"] <= 1000 - 25 + 1


def test_a_provider_error_is_a_failure_with_the_providers_own_message(world):
    sidecar, provider, fb, sdk, claude, _ = world
    provider.mode = "503"
    with pytest.raises(openai.InternalServerError):
        ask(sdk)
    state = status(fb, "openai")
    assert state["consecutive_failures"] == 1 and state["last_status"] == 503
    assert state["last_error"] == "server_error: the engine is overloaded"


def test_a_429_with_an_http_date_retry_after_holds_the_breaker_open_until_then(world):
    sidecar, provider, fb, sdk, claude, _ = world
    provider.mode = "429-date"
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hello"}])
    state = status(fb, "anthropic")
    assert state["state"] == "open", state
    # Opened for about the 600 s the date said, not for open.duration's 1 s.
    with pytest.raises(BreakerOpen) as refused:
        fb.acquire("anthropic")
    assert refused.value.retry_in_ms is not None and refused.value.retry_in_ms > 500_000


def test_a_stream_is_reported_when_it_ends_and_a_stream_that_dies_midway_is_a_failure(world):
    sidecar, provider, fb, sdk, claude, _ = world
    provider.mode = "stream"
    chunks = list(ask(sdk, stream=True))
    assert len(chunks) == 3
    assert status(fb, "openai")["consecutive_failures"] == 0
    # A success, not a cancel: the SDK stops at [DONE] and closes before the body's end, which the transport reads as complete.
    assert 'fusebox_calls_total{breaker="openai",outcome="success"} 1\n' in scrape(sidecar)
    provider.mode = "stream-dies"
    with pytest.raises(openai.APIError):
        for _ in ask(sdk, stream=True):
            pass
    state = status(fb, "openai")
    assert state["consecutive_failures"] == 1 and state["permits_in_flight"] == 0, state


def test_a_stream_closed_early_is_cancelled_not_counted(world):
    sidecar, provider, fb, sdk, claude, _ = world
    provider.mode = "stream"
    stream = ask(sdk, stream=True)
    next(iter(stream))
    stream.close()
    state = status(fb, "openai")
    assert state["permits_in_flight"] == 0 and state["consecutive_failures"] == 0
    assert 'fusebox_calls_total{breaker="openai",outcome="cancelled"} 1\n' in scrape(sidecar)


def test_an_open_breaker_stops_the_request_before_it_leaves(world):
    sidecar, provider, fb, sdk, claude, _ = world
    sidecar.admin('{"op":"force","breaker":"openai","state":"open"}')
    before = provider.calls
    # The SDK lets the transport's BreakerOpen through as it is: the app catches it by name.
    with pytest.raises(BreakerOpen) as refused:
        ask(sdk)
    assert refused.value.breaker == "openai" and refused.value.state == "forced_open"
    assert provider.calls == before
    # Other hosts pass through untouched.
    assert httpx2.Client(transport=Transport(fb, routes={})).get(f"http://{provider.host}/").status_code == 501


def test_the_async_transport_under_the_async_sdk(world):
    sidecar, provider, fb, sdk, claude, routes = world

    async def main():
        afb = AsyncFusebox(sidecar.socket)
        async with httpx2.AsyncClient(transport=AsyncTransport(afb, routes=routes)) as http:
            client = openai.AsyncOpenAI(base_url=f"http://{provider.host}/v1", api_key="test", max_retries=0, http_client=http)
            reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
            provider.mode = "503"
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
        await afb.close()
        return reply

    assert asyncio.run(main()).choices[0].message.content == "hi"
    state = status(fb, "openai")
    assert state["consecutive_failures"] == 1 and state["permits_in_flight"] == 0


def test_the_plain_httpx_transport_guards_a_direct_request(world):
    sidecar, provider, fb, sdk, claude, routes = world
    with httpx.Client(transport=for_httpx.Transport(fb, routes=routes)) as http:
        reply = http.post(f"http://{provider.host}/v1/chat/completions", json={})
        assert reply.json()["usage"]["total_tokens"] == 42
        provider.mode = "503"
        assert http.post(f"http://{provider.host}/v1/chat/completions", json={}).status_code == 503
    state = status(fb, "openai")
    assert state["consecutive_failures"] == 1 and state["permits_in_flight"] == 0
    assert 1000 - 42 - 1 <= state["token_budget_available"] <= 1000 - 42 + 1


def test_routes_pick_the_longest_match():
    url = httpx.URL("https://api.openai.com/v1/chat/completions")
    assert for_httpx.breaker_for(for_httpx.DEFAULT_ROUTES, url) == "openai"
    assert for_httpx.breaker_for({"api.openai.com": "a", "api.openai.com/v1/chat": "b"}, url) == "b"
    assert for_httpx.breaker_for({"api.openai.com/v2": "a"}, url) is None
    assert for_httpx.breaker_for(for_httpx.DEFAULT_ROUTES, httpx.URL("http://localhost:11434/api/chat")) == "ollama"


def test_five_failures_open_the_breaker_and_the_sixth_call_never_reaches_the_provider(world):
    sidecar, provider, fb, sdk, claude, _ = world
    provider.mode = "503"
    for _ in range(5):  # consecutive_failures: 5
        with pytest.raises(openai.InternalServerError):
            ask(sdk)
    reached = provider.calls
    with pytest.raises(BreakerOpen):
        ask(sdk)
    assert provider.calls == reached, "the sixth call was refused before it left"
    assert status(fb, "openai")["state"] == "open"


def test_a_200_chunk_stream_is_reported_as_a_success_when_it_ends(world):
    sidecar, provider, fb, sdk, claude, _ = world
    provider.mode = "stream-200"
    stream = ask(sdk, stream=True)
    chunks = iter(stream)
    next(chunks)
    assert status(fb, "openai")["permits_in_flight"] == 1, "not reported while the stream runs"
    assert len(list(chunks)) == 199
    state = status(fb, "openai")
    assert state["permits_in_flight"] == 0 and state["consecutive_failures"] == 0
    # Reported once, with its time to first byte.
    metrics = scrape(sidecar)
    assert 'fusebox_time_to_first_byte_seconds_count{breaker="openai"} 1\n' in metrics, \
        [line for line in metrics.splitlines() if "first_byte_seconds_count" in line or "duration_seconds_count" in line]
    assert 'fusebox_call_duration_seconds_count{breaker="openai",outcome="success"} 1\n' in metrics
