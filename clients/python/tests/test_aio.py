"""The asyncio client against the real sidecar binary."""
from __future__ import annotations

import asyncio
import time

import pytest

from fusebox import AsyncFusebox, BreakerOpen, ChainExhausted, SidecarUnavailable


class Upstream503(Exception):
    status_code = 503


def run(coroutine):
    return asyncio.run(coroutine)


def test_async_guard_and_breaker_open(sidecar):
    async def main():
        fb = AsyncFusebox(sidecar.socket)
        async with fb.guard("openai"):
            pass
        for _ in range(3):
            with pytest.raises(Upstream503):
                async with fb.guard("openai"):
                    raise Upstream503()
        with pytest.raises(BreakerOpen) as refused:
            async with fb.guard("openai"):
                pytest.fail("must not run")
        assert refused.value.retry_in_ms is not None
        await fb.close()

    run(main())


def test_async_chain_falls_back(sidecar):
    async def main():
        fb = AsyncFusebox(sidecar.socket)
        tried = []
        async for attempt in fb.chain("llm"):
            async with attempt:
                tried.append(attempt.breaker)
                if attempt.breaker == "openai":
                    raise Upstream503()
        assert tried == ["openai", "anthropic"]
        sidecar.admin('{"op":"force","breaker":"anthropic","state":"open"}')
        sidecar.admin('{"op":"force","breaker":"ollama","state":"open"}')
        sidecar.admin('{"op":"force","breaker":"openai","state":"open"}')
        with pytest.raises(ChainExhausted):
            async for attempt in fb.chain("llm"):
                async with attempt:
                    pass
        await fb.close()

    run(main())


def test_fifty_tasks_share_one_client(sidecar):
    async def main():
        fb = AsyncFusebox(sidecar.socket, pool_size=16)

        async def work():
            for _ in range(20):
                async with fb.guard("anthropic"):
                    await asyncio.sleep(0)  # pacing: yields to the other tasks mid-call

        await asyncio.gather(*(work() for _ in range(50)))
        [anthropic] = await fb.status("anthropic")
        assert anthropic["permits_in_flight"] == 0
        await fb.close()

    run(main())


@pytest.mark.parametrize("policy", ["allow", "deny", "raise"])
def test_async_sidecar_absent(stopped_sidecar, policy):
    async def main():
        fb = AsyncFusebox(stopped_sidecar.socket, on_unavailable=policy)
        if policy == "allow":
            async with fb.guard("openai") as call:
                assert call.permit.degraded
        elif policy == "deny":
            with pytest.raises(BreakerOpen):
                await fb.acquire("openai")
        else:
            with pytest.raises(SidecarUnavailable):
                await fb.acquire("openai")

    run(main())


def test_an_async_pooled_connection_closed_for_idleness_is_replaced(stopped_sidecar):
    from conftest import CONFIG
    (stopped_sidecar.folder / "fusebox.yaml").write_text(CONFIG + "idle_timeout: 1s\n")
    stopped_sidecar.start()

    async def scenario():
        fb = AsyncFusebox(stopped_sidecar.socket, pool_size=1, fast_path=False)  # the socket's pool is tested
        first = await fb.acquire("openai")
        await fb.report(first, status=200)
        pooled = fb._idle[0]
        deadline = time.monotonic() + 10
        while not pooled.reader.at_eof():  # idle_timeout: 1s, then the sidecar closes it
            assert time.monotonic() < deadline, "the sidecar never closed the idle pooled connection"
            await asyncio.sleep(0.05)  # poll
        second = await fb.acquire("openai")
        assert not second.degraded and second.id is not None
        await fb.report(second, status=200)
        await fb.close()

    try:
        asyncio.run(scenario())
    finally:
        stopped_sidecar.stop()
