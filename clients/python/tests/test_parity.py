"""The asyncio client at parity with the sync one, token costs in guard and
chain, transition listeners, and the tenacity helpers (with real tenacity)."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
import tenacity

from fusebox import AsyncFusebox, BreakerOpen, Fusebox
from fusebox.tenacity import retry_unless_breaker_open, wait_retry_in

METERED = """
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: off
defaults:
  trip: { consecutive_failures: 3, window: off }
  open: { duration: 30s, jitter: 0, backoff: off }
breakers: { openai: { tokens: { budget: 1000, per: 24h } }, anthropic: {}, ollama: {} }
chains: { llm: [openai, anthropic, ollama] }
"""


@pytest.fixture
def metered(tmp_path):
    from conftest import Sidecar
    running = Sidecar(tmp_path, METERED).start()
    yield running
    running.stop()


def tokens_left(fb) -> float:
    return fb.status("openai")[0]["token_budget_available"]


def test_guard_and_chain_charge_a_cost_and_the_block_settles_it(metered):
    fb = Fusebox(metered.socket)
    with fb.guard("openai", cost=500) as call:
        call.tokens_used = 120
    assert 1000 - 121 <= tokens_left(fb) <= 1000 - 119
    for attempt in fb.chain("llm", cost=300):
        with attempt:
            attempt.tokens_used = 80
    assert 1000 - 201 <= tokens_left(fb) <= 1000 - 199
    fb.close()


def test_the_async_client_has_protect_async_with_chains_and_a_typed_report(metered):
    async def main():
        async with AsyncFusebox(metered.socket, chains={"llm": ["openai", "anthropic"]}) as fb:
            @fb.protect("openai", cost=100)
            async def ask() -> str:
                return "hi"

            assert await ask() == "hi"
            permit = await fb.acquire("anthropic")
            assert await fb.report(permit, status=503, latency_ms=12.5) == "closed"
            with pytest.raises(TypeError):
                await fb.report(permit, bogus=1)  # keyword-only and typed, as the sync one
            async with fb.guard("openai", cost=50) as call:
                call.tokens_used = 10
            return fb.chains, (await fb.status("anthropic"))[0]["consecutive_failures"], (await fb.status("openai"))[0]

    chains, failures, openai_state = asyncio.run(main())
    assert chains["llm"] == ["openai", "anthropic", "ollama"], "the sidecar's description replaces the one given, once connected"
    assert failures == 1
    assert 1000 - 111 <= openai_state["token_budget_available"] <= 1000 - 109


def test_listeners_hear_every_transition_and_survive_their_own_errors(metered):
    fb = Fusebox(metered.socket)
    heard = []
    got_three = threading.Event()

    def hear(event):
        heard.append((event["breaker"], event["old_state"], event["new_state"], event["reason"]))
        if len(heard) == 1:
            raise RuntimeError("a listener's own bug")
        if len(heard) >= 2:
            got_three.set()

    listener = fb.listen(hear)
    assert listener.wait_subscribed(10)
    for _ in range(3):
        fb.request({"op": "record", "breaker": "ollama", "status": 503})
    metered.admin('{"op":"reset","breaker":"ollama"}')
    assert got_three.wait(5), heard
    listener.stop()
    assert heard[:2] == [("ollama", "closed", "open", "consecutive_failures"), ("ollama", "open", "closed", "reset")]
    fb.close()


def test_async_transitions_arrive_as_an_async_iterator(metered):
    async def main():
        fb = AsyncFusebox(metered.socket)
        subscribed = asyncio.Event()
        events = fb.transitions(subscribed)
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.wait_for(subscribed.wait(), 10)
        for _ in range(3):
            await fb.request({"op": "record", "breaker": "anthropic", "status": 500})
        event = await asyncio.wait_for(first, 5)
        await events.aclose()
        await fb.close()
        return event

    event = asyncio.run(main())
    assert (event["breaker"], event["new_state"]) == ("anthropic", "open")


def test_tenacity_never_retries_a_refusal_and_waits_what_was_said(metered):
    fb = Fusebox(metered.socket)
    attempts = []

    @tenacity.retry(retry=retry_unless_breaker_open, wait=wait_retry_in(0.01), stop=tenacity.stop_after_attempt(5), reraise=True)
    def flaky():
        attempts.append(1)
        with fb.guard("openai"):
            raise ConnectionError("reset by peer")

    with pytest.raises(BreakerOpen):
        flaky()
    # Three failures trip the breaker (consecutive_failures: 3); the fourth attempt is refused and not retried.
    assert len(attempts) == 4

    class RateLimited(Exception):
        def __init__(self):
            super().__init__("429")
            self.status_code = 429
            self.response = type("R", (), {"headers": {"Retry-After": "7"}})()

    state = type("S", (), {"outcome": type("O", (), {"failed": True, "exception": lambda self: RateLimited()})()})()
    assert wait_retry_in(1.0)(state) == 7.0
    refused = type("S", (), {"outcome": type("O", (), {"failed": True, "exception": lambda self: BreakerOpen("a", "open", 2500)})()})()
    assert wait_retry_in(1.0, maximum=2.0)(refused) == 2.0
    fb.close()


def test_retry_after_as_an_http_date_is_understood():
    import email.utils
    from fusebox.classify import retry_after_ms
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 118_000 <= retry_after_ms({"Retry-After": later}) <= 121_000
    assert retry_after_ms({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_ms({"Retry-After": "3"}) == 3000.0
    assert retry_after_ms({"retry-after-ms": "250"}) == 250.0
    assert retry_after_ms({"Retry-After": "soon"}) is None
