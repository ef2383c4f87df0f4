"""The fast path end to end: the real sidecar posts breaker states in
``<socket>.state``; clients in other processes call a closed breaker without
asking, and fall back to the socket whenever the file cannot be trusted."""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Iterator

import pytest

from budget_worker import total
from conftest import Sidecar
from fusebox import BreakerOpen, Fusebox
from test_budgets import WORKERS, ProviderStubs, config, run_workers, start_sidecar

CLIENT_PATH = str(pathlib.Path(__file__).resolve().parents[1])


def wait_for_state_file(sidecar: Sidecar) -> pathlib.Path:
    path = pathlib.Path(sidecar.socket + ".state")
    deadline = time.time() + 10
    while not path.exists():
        assert time.time() < deadline, "the sidecar never posted its state file"
        time.sleep(0.02)  # poll
    return path


@contextmanager
def kept_fresh(path: pathlib.Path) -> Iterator[None]:
    """Rewrites the heartbeat of the file at ``path`` every 50 ms, as a live sidecar would."""
    stop = threading.Event()
    first_beat = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            with open(path, "r+b") as file:
                file.seek(32)
                file.write(struct.pack("<Q", int(time.time() * 1000)))
            first_beat.set()
            stop.wait(0.05)

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        assert first_beat.wait(10), "the heartbeat thread never wrote"
        yield
    finally:
        stop.set()
        beater.join()


def forged_copy(real: pathlib.Path, states: dict) -> bytearray:
    """The sidecar's own file, with breaker states (and the admits-locally flag) rewritten as ``states`` says."""
    contents = bytearray(real.read_bytes())
    header, size, slots = struct.unpack_from("<III", contents, 12)
    codes = {"closed": 1, "open": 2}
    for slot in range(slots):
        at = header + slot * size
        name = bytes(contents[at + 64: at + 64 + contents[at + 6]]).decode()
        if name in states:
            contents[at + 4] = codes[states[name]]
            contents[at + 5] = 1 if states[name] == "closed" else 0
    return contents


def other_process(socket: str, script: str) -> str:
    """Runs ``script`` in a new Python process with ``fb`` a client of ``socket``; returns what it printed."""
    program = "from fusebox import Fusebox, BreakerOpen\nfb = Fusebox(%r)\n" % socket + textwrap.dedent(script)
    done = subprocess.run([sys.executable, "-c", program], env={**os.environ, "PYTHONPATH": CLIENT_PATH},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_closed_breaker_is_called_without_asking_and_its_outcomes_still_count(sidecar):
    wait_for_state_file(sidecar)
    with Fusebox(sidecar.socket) as fb:
        for _ in range(20):
            with fb.guard("openai"):
                pass
        permit = fb.acquire("openai")
        assert permit.fast and permit.id is None and permit.generation == 0
        fb.report(permit, outcome="success")
        assert fb.stats()["fast_path"] == 21
        # Two failures are records the client waits for: the breaker has counted them when report returns.
        for _ in range(2):
            assert fb.report(fb.acquire("openai"), status=503) == "closed"
        assert fb.status("openai")[0]["consecutive_failures"] == 2


def test_a_breaker_opened_by_one_process_is_seen_open_by_anothers_next_guarded_call(sidecar):
    wait_for_state_file(sidecar)
    with Fusebox(sidecar.socket) as fb:
        with fb.guard("openai"):
            pass
        assert fb.stats()["fast_path"] == 1
        printed = other_process(sidecar.socket, """
            for _ in range(3):  # the test configuration trips at 3 failures in a row
                try:
                    with fb.guard("openai"):
                        raise ConnectionError("provider down")
                except ConnectionError:
                    pass
            print(fb.stats()["fast_path"], fb.status("openai")[0]["state"])
        """)
        assert printed.split() == ["3", "open"], "the other process took the fast path, and tripped the breaker"
        with pytest.raises(BreakerOpen) as refused:
            with fb.guard("openai"):
                pass
        assert refused.value.state == "open"
        assert fb.stats()["fast_path"] == 1, "an open breaker is asked about, not called"


@pytest.mark.parametrize("damage", ["stale heartbeat", "unknown version", "bad magic", "truncated", "missing"])
def test_a_stale_or_corrupt_state_file_falls_back_to_the_socket(sidecar, damage):
    real = wait_for_state_file(sidecar)
    contents = bytearray(real.read_bytes())
    real.unlink()  # the sidecar's own file stays mapped by it; clients now find ours
    if damage == "stale heartbeat":
        struct.pack_into("<Q", contents, 32, int(time.time() * 1000) - 60_000)
    elif damage == "unknown version":
        struct.pack_into("<I", contents, 8, 2)
    elif damage == "bad magic":
        contents[0:8] = b"NOTFUSES"
    elif damage == "truncated":
        contents = contents[:40]
    if damage != "missing":
        real.write_bytes(bytes(contents))
    with Fusebox(sidecar.socket) as fb, (kept_fresh(real) if damage not in ("stale heartbeat", "missing", "truncated") else nullcontext()):
        # Fresh unless the damage is staleness: only the damage differs from the sidecar's own file.
        permit = fb.acquire("openai")
        assert permit.id is not None and not permit.fast and not permit.degraded, "asked the socket"
        fb.report(permit, outcome="success")
        assert fb.stats()["fast_path"] == 0


def test_a_fifo_at_the_state_files_path_never_hangs_a_client(sidecar):
    real = wait_for_state_file(sidecar)
    real.unlink()
    os.mkfifo(real)
    printed = other_process(sidecar.socket, """
        with fb.guard("openai"):
            pass
        print(fb.stats()["fast_path"])
    """)
    assert printed.split() == ["0"], "the client asked the socket instead of waiting on the FIFO"


def test_a_forged_state_file_is_not_believed_by_a_client_of_a_sidecar_without_one(stopped_sidecar):
    from conftest import CONFIG
    # A sidecar with a file to copy the form from, then one without a fast path at all, on the same socket.
    sidecar = stopped_sidecar.start()
    template = bytes(wait_for_state_file(sidecar).read_bytes())
    sidecar.stop()
    (stopped_sidecar.folder / "fusebox.yaml").write_text(CONFIG + "fast_path: false\n")
    sidecar = stopped_sidecar.start()
    try:
        forged = pathlib.Path(sidecar.socket + ".state")
        forged.write_bytes(template)
        forged.write_bytes(bytes(forged_copy(forged, {"openai": "closed"})))
        with Fusebox(sidecar.socket) as fb, kept_fresh(forged):
            for _ in range(3):
                fb.report(fb.acquire("openai"), status=503)
            assert fb.status("openai")[0]["state"] == "open"
            with pytest.raises(BreakerOpen):
                with fb.guard("openai"):
                    pass
            assert fb.stats()["fast_path"] == 0, "the forged file named no sidecar's hello"
    finally:
        sidecar.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_state_file_owned_by_another_user_is_not_believed(sidecar):
    real = wait_for_state_file(sidecar)
    with Fusebox(sidecar.socket) as fb:
        for _ in range(3):
            fb.report(fb.acquire("openai"), status=503)
    forged = forged_copy(real, {"openai": "closed"})  # the real boot id and pid: only the owner differs
    real.unlink()
    real.write_bytes(bytes(forged))
    os.chown(real, 65534, 65534)
    with kept_fresh(real), Fusebox(sidecar.socket) as fb:  # a new client: it reads the file at the path
        with pytest.raises(BreakerOpen):
            with fb.guard("openai"):
                pass
        assert fb.stats()["fast_path"] == 0


def test_a_sidecar_restart_is_detected(stopped_sidecar):
    sidecar = stopped_sidecar.start()
    wait_for_state_file(sidecar)
    with Fusebox(sidecar.socket, reconnect_interval=0.05) as fb:
        with fb.guard("openai"):
            pass
        first_boot = fb._board.boot_id
        sidecar.process.send_signal(signal.SIGKILL)  # no clean stop: the file stays, its heartbeat goes stale
        sidecar.process.wait()
        time.sleep(1.2)  # pacing: past the sidecar's stale-after (10 ticks of 100 ms)
        assert fb.acquire("openai").degraded, "a dead sidecar's file is not trusted: the socket is asked, and is gone"
        sidecar.start()
        wait_for_state_file(sidecar)
        deadline = time.time() + 10
        permit = fb.acquire("openai")
        while not permit.fast and time.time() < deadline:
            time.sleep(0.1)  # poll
            permit = fb.acquire("openai")
        assert permit.fast, "the new sidecar's file was found"
        assert fb._board.restarts == 1 and fb._board.boot_id != first_boot
        assert fb.report(permit, status=503) == "closed"
        assert fb.status("openai")[0]["consecutive_failures"] == 1, "the record reached the new sidecar"
    sidecar.stop()


def test_with_the_fast_path_a_down_provider_sees_no_more_calls_than_the_trip_allows():
    """Eight workers, each calling every 20 ms, against a provider that answers 503 at once. Calls reach it
    until the breaker opens: the threshold's 5 failures, plus calls already in flight at that moment
    (at most the 7 other workers'), whichever path took them. The socket path runs too, for comparison."""
    threshold = 5
    reached = {}
    fast = 0
    for mode in ("acquire-socket", "acquire"):
        stubs = ProviderStubs()
        sidecar = start_sidecar(config("{ down: {} }"))
        try:
            wait_for_state_file(sidecar)
            results = run_workers(sidecar, mode, "down", duration=2, interval=0.02, providers={"down": stubs.url("down")})
        finally:
            sidecar.stop()
            stubs.stop()
            shutil.rmtree(sidecar.folder, ignore_errors=True)
        reached[mode] = stubs.calls["down"]
        assert total(results, "refused").get("open", 0) > 0, "every worker was refused once it opened"
        if mode == "acquire":
            fast = total(results, "fast_path").get("calls", 0)
    print(f"\n{WORKERS} workers: {reached['acquire']} calls reached the down provider with the fast path "
          f"({fast} taken without asking), {reached['acquire-socket']} asking the socket every time")
    assert fast == reached["acquire"], "every call before the trip went on the fast path"
    for calls in reached.values():
        assert threshold <= calls <= threshold + WORKERS - 1


def test_the_asyncio_client_takes_the_same_fast_path(sidecar):
    import asyncio

    from fusebox import AsyncFusebox

    wait_for_state_file(sidecar)

    async def scenario():
        fb = AsyncFusebox(sidecar.socket)
        async with fb.guard("openai"):
            pass
        permit = await fb.acquire("openai")
        assert permit.fast and permit.generation == 0
        assert await fb.report(permit, status=503) == "closed", "a failure waits for its answer"
        assert (await fb.status("openai"))[0]["consecutive_failures"] == 1
        assert fb.stats()["fast_path"] == 2
        await fb.close()

    asyncio.run(scenario())


def test_an_ordered_chain_routes_to_its_first_member_without_asking_until_it_would_skip(stopped_sidecar):
    from conftest import CONFIG
    (stopped_sidecar.folder / "fusebox.yaml").write_text(
        CONFIG.replace("chains: { llm: [openai, anthropic, ollama] }",
                       "chains: { llm: [openai, anthropic, ollama], quick: { breakers: [openai, anthropic], strategy: fastest } }"))
    sidecar = stopped_sidecar.start()
    wait_for_state_file(sidecar)
    try:
        with Fusebox(sidecar.socket) as fb:
            fb.status()  # the first connection's hello tells the client each chain's members and strategy
            permit = fb.route("llm")
            assert permit.fast and permit.breaker == "openai" and (permit.strategy, permit.why) == ("ordered", "order")
            fb.report(permit, outcome="success")
            assert not fb.route("quick").fast, "a fastest chain's choice is the sidecar's to make"
            assert not fb.route("llm", exclude=["openai"]).fast, "a route that skips a member asks"
            for _ in range(3):
                fb.report(fb.acquire("openai"), status=503)
            routed = fb.route("llm")
            assert not routed.fast and routed.breaker == "anthropic", "openai is open: the sidecar skips it"
            fb.report(routed, outcome="success")
            assert fb.stats()["fast_path"] == 1 + 3
    finally:
        sidecar.stop()
