"""The fast path's successes are batched; failures are not, and nothing is
reordered or lost on a clean exit."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from conftest import Sidecar, sidecar_config
from fusebox import BreakerOpen, Fusebox

# No budget: the fast path. A count window, so status shows every call the sidecar heard of.
CONFIG = sidecar_config("""
idle_timeout: 1s
defaults:
  trip: { consecutive_failures: 2, window: { kind: count, size: 1000 }, minimum_calls: 1000 }
  open: { duration: 30s, jitter: 0, backoff: off }
breakers: { openai: {} }
""")


@pytest.fixture
def fast_sidecar():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-batch-"))
    running = Sidecar(folder, CONFIG).start()
    yield running
    running.stop()
    shutil.rmtree(folder, ignore_errors=True)


def heard(fb: Fusebox) -> int:
    return int(fb.status("openai")[0]["calls_in_window"])


def wait_until_heard(fb: Fusebox, count: int) -> None:
    deadline = time.monotonic() + 5  # a generous bound on a 1 ms flush: a stuck batch fails here
    while heard(fb) < count:
        assert time.monotonic() < deadline, f"the sidecar heard {heard(fb)} of {count} calls"
        time.sleep(0.005)  # poll


class Failed(Exception):
    pass


def call(fb: Fusebox, fail: bool) -> None:
    try:
        with fb.guard("openai"):
            if fail:
                raise Failed("503")
    except Failed:
        pass


def test_a_batched_success_reaches_the_sidecar_and_a_failure_is_counted_before_the_next_guard(fast_sidecar):
    fb = Fusebox(fast_sidecar.socket)
    observer = Fusebox(fast_sidecar.socket, fast_path=False)
    call(fb, fail=False)
    assert fb.stats()["fast_path"] == 1
    wait_until_heard(observer, 1)
    # Success, failure, success, failure: in that order the breaker holds one failure in a row;
    # a success that overtook its failure would leave none.
    for fail in (False, True, False, True):
        call(fb, fail)
    state = observer.status("openai")[0]
    assert state["consecutive_failures"] == 1, "the failure was counted, after the success before it"
    call(fb, fail=True)
    assert observer.status("openai")[0]["state"] == "open", "the second failure in a row was counted before the guard returned"
    fb.close()
    observer.close()


EXITING = """
import sys
from fusebox import BreakerOpen, Fusebox
fb = Fusebox(sys.argv[1])
for _ in range(50):
    with fb.guard("openai"):
        pass
assert fb.stats()["fast_path"] == 50
"""


def test_no_success_is_lost_on_a_clean_exit(fast_sidecar):
    subprocess.run([sys.executable, "-c", EXITING, fast_sidecar.socket], check=True)
    observer = Fusebox(fast_sidecar.socket, fast_path=False)
    wait_until_heard(observer, 50)
    assert heard(observer) == 50
    observer.close()


def test_records_survive_the_sidecar_closing_their_idle_connection(fast_sidecar):
    fb = Fusebox(fast_sidecar.socket)
    observer = Fusebox(fast_sidecar.socket, fast_path=False)
    call(fb, fail=False)
    wait_until_heard(observer, 1)
    lane = fb._records._connection
    deadline = time.monotonic() + 10
    while not lane.closed_by_peer():  # idle_timeout: 1s
        assert time.monotonic() < deadline, "the sidecar never closed the idle record connection"
        time.sleep(0.05)  # poll
    call(fb, fail=False)
    call(fb, fail=True)
    wait_until_heard(observer, 3)
    assert observer.status("openai")[0]["consecutive_failures"] == 1, "the failure after the idle close was counted"
    fb.close()
    observer.close()


def test_a_failure_report_does_not_wait_for_the_socket_timeout_on_a_live_record_connection():
    # The bug this pins down: the look for an idle close waited for readability up to the socket's timeout,
    # so every failure on a live lane stalled `timeout` seconds and threads queued behind it (the FastAPI example).
    # No idle_timeout here: a close after 1 s would wake the wait and hide it.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-batch-"))
    sidecar = Sidecar(folder, CONFIG.replace("idle_timeout: 1s\n", "")).start()
    fb = Fusebox(sidecar.socket, timeout=600)
    call(fb, fail=False)
    fb.flush()
    finished = threading.Event()

    def fail_twice() -> None:
        call(fb, fail=True)
        call(fb, fail=True)
        finished.set()

    threading.Thread(target=fail_twice, daemon=True).start()
    assert finished.wait(60), "a failure report on a live record connection waited for the 600 s socket timeout"
    with pytest.raises(BreakerOpen):
        with fb.guard("openai"):
            pass
    fb.close()
    sidecar.stop()
    shutil.rmtree(folder, ignore_errors=True)
