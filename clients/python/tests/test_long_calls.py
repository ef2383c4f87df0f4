"""Calls longer than permit_ttl: a healthy call that keeps running is renewed
by the client and counts as the success it is; a client that dies or freezes
mid-call still gives its permit back."""
from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import httpx2
import openai
import pytest

from conftest import Sidecar, sidecar_config
from fusebox import AsyncFusebox, Fusebox
from fusebox.httpx2 import Transport
from test_httpx import Provider

# max_in_flight puts every call on the socket path (the fast path holds no permit to expire).
CONFIG = sidecar_config("""
defaults:
  trip: { consecutive_failures: 2, window: off }
  open: { duration: 30s, jitter: 0, backoff: off }
  permit_ttl: 2s
breakers:
  slow: { max_in_flight: 8 }
""")
CALL_SECONDS = 5.0


@pytest.fixture
def long_sidecar():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-long-"))
    running = Sidecar(folder, CONFIG).start()
    yield running
    running.stop()
    shutil.rmtree(folder, ignore_errors=True)


def settled(fb: Fusebox) -> dict:
    return fb.status("slow")[0]


def wait_for(predicate, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)  # poll


def test_four_healthy_five_second_calls_through_guard_leave_the_breaker_closed(long_sidecar):
    fb = Fusebox(long_sidecar.socket)
    done = []

    def call() -> None:
        with fb.guard("slow") as guard:
            assert guard.permit is not None and guard.permit.ttl_ms == 2000
            time.sleep(CALL_SECONDS)  # pacing: a call longer than permit_ttl
        done.append(True)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = settled(fb)
    assert len(done) == 4
    assert state["state"] == "closed" and state["consecutive_failures"] == 0 and state["permits_in_flight"] == 0, state
    fb.close()


def test_four_healthy_five_second_calls_through_the_async_guard_leave_the_breaker_closed(long_sidecar):
    async def main() -> dict:
        async with AsyncFusebox(long_sidecar.socket) as fb:
            async def call() -> None:
                async with fb.guard("slow"):
                    await asyncio.sleep(CALL_SECONDS)  # pacing: a call longer than permit_ttl

            await asyncio.gather(*(call() for _ in range(4)))
            return (await fb.status("slow"))[0]

    state = asyncio.run(main())
    assert state["state"] == "closed" and state["consecutive_failures"] == 0 and state["permits_in_flight"] == 0, state


def test_a_five_second_stream_through_the_httpx2_transport_is_one_successful_call(long_sidecar):
    provider = Provider()
    provider.mode = "stream-slow"
    fb = Fusebox(long_sidecar.socket)
    http = httpx2.Client(transport=Transport(fb, routes={provider.host: "slow"}))
    sdk = openai.OpenAI(base_url=f"http://{provider.host}/v1", api_key="test", max_retries=0, http_client=http)
    started = time.monotonic()
    chunks = list(sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert len(chunks) == int(CALL_SECONDS) and time.monotonic() - started >= CALL_SECONDS - 0.5
    state = settled(fb)
    assert state["state"] == "closed" and state["consecutive_failures"] == 0 and state["permits_in_flight"] == 0, state
    http.close()
    fb.close()
    provider.server.shutdown()


CHILD = """
import sys, time
from fusebox import Fusebox
fb = Fusebox(sys.argv[1])
with fb.guard("slow"):
    print("calling", flush=True)
    time.sleep(600)  # pacing: a call that outlives the test (the child is killed or stopped)
"""


def child_mid_call(socket_path: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD, socket_path], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "calling"
    return child


def test_a_client_sigkilled_mid_call_frees_its_permit(long_sidecar):
    fb = Fusebox(long_sidecar.socket)
    child = child_mid_call(long_sidecar.socket)
    time.sleep(3)  # pacing: past permit_ttl: renewed, so still held
    assert settled(fb)["permits_in_flight"] == 1
    child.kill()
    child.wait()
    wait_for(lambda: settled(fb)["permits_in_flight"] == 0, 2.0 + 1.0, "the dead client's permit was never freed")
    fb.close()


def test_a_frozen_client_stops_renewing_and_its_permit_expires_after_permit_ttl(long_sidecar):
    fb = Fusebox(long_sidecar.socket)
    child = child_mid_call(long_sidecar.socket)
    try:
        time.sleep(3)  # pacing: past permit_ttl: renewed, so still held
        assert settled(fb)["permits_in_flight"] == 1
        os.kill(child.pid, signal.SIGSTOP)  # its connection stays open, silent
        stopped = time.monotonic()
        wait_for(lambda: settled(fb)["permits_in_flight"] == 0, 2.0 + 1.5, "a silent permit outlived permit_ttl")
        assert time.monotonic() - stopped >= 2.0 - 2.0 / 3 - 0.1, "expired before a ttl of silence"
        assert settled(fb)["consecutive_failures"] == 1, "an expired permit counts as a timeout"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        fb.close()
