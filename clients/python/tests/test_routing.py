"""Routes that choose: capabilities the call requires, and the strategy's reason on the permit."""
from __future__ import annotations

import asyncio
import pathlib
import shutil
import tempfile

import pytest

from conftest import Sidecar
from fusebox import AsyncFusebox, ChainExhausted, Fusebox

CONFIG = """
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: off
breakers:
  openai: { capabilities: [tools], cost: { input_per_1k: 2.5, output_per_1k: 10 } }
  anthropic: { capabilities: [tools, vision], cost: { input_per_1k: 3, output_per_1k: 15 } }
  ollama: { cost: { weight: 0 } }
chains:
  llm: [openai, anthropic, ollama]
  cheap: { breakers: [openai, anthropic, ollama], strategy: cheapest }
"""


@pytest.fixture
def routing_sidecar():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-py-"))
    running = Sidecar(folder, CONFIG).start()
    yield running
    running.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_requires_passes_over_members_without_the_capability(routing_sidecar):
    fb = Fusebox(routing_sidecar.socket)
    permit = fb.route("llm", requires=["vision"])
    assert permit.breaker == "anthropic" and permit.strategy == "ordered" and permit.why == "order"
    fb.report(permit, status=200)
    with pytest.raises(ChainExhausted) as refused:
        fb.route("llm", requires=["audio"])
    assert {s["reason"] for s in refused.value.skipped} == {"capability"}
    for attempt in fb.chain("llm", requires=["vision"]):
        with attempt:
            assert attempt.breaker == "anthropic"


def test_the_strategy_and_its_figure_come_through(routing_sidecar):
    fb = Fusebox(routing_sidecar.socket)
    permit = fb.route("cheap")
    assert (permit.breaker, permit.strategy, permit.why, permit.figure) == ("ollama", "cheapest", "cost", 0)
    fb.report(permit, status=200)
    permit = fb.route("cheap", requires=["tools"])
    assert (permit.breaker, permit.why, permit.figure) == ("openai", "cost", 12.5)
    fb.report(permit, status=200)


def test_the_async_client_takes_requires_too(routing_sidecar):
    async def main() -> None:
        fb = AsyncFusebox(routing_sidecar.socket)
        permit = await fb.route("llm", requires=["vision"])
        assert permit.breaker == "anthropic"
        await fb.report(permit, status=200)
        async for attempt in fb.chain("llm", requires=["vision"]):
            async with attempt:
                assert attempt.breaker == "anthropic"
        await fb.close()

    asyncio.run(main())
