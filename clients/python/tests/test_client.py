"""The Python client against the real sidecar binary."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from fusebox import BreakerOpen, ChainExhausted, Fusebox, ProtocolError, SidecarUnavailable


class FakeAPIError(Exception):
    """Shaped like openai.APIStatusError / anthropic.APIStatusError."""

    def __init__(self, status_code: int, headers=None):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.response = type("Response", (), {"status_code": status_code, "headers": headers or {}})()


class ReadTimeout(Exception):
    """Shaped like httpx.ReadTimeout (its name says timeout)."""


def test_guard_reports_success_and_classified_failures(sidecar):
    fb = Fusebox(sidecar.socket)
    with fb.guard("openai") as call:
        call.status = 200
    for error in (FakeAPIError(404), FakeAPIError(503), ReadTimeout("slow")):
        with pytest.raises(type(error)):
            with fb.guard("openai"):
                raise error
    [openai] = fb.status("openai")
    assert openai["consecutive_failures"] == 2  # 404 is ignored; 503 and the timeout count
    assert openai["last_status"] == 503
    with pytest.raises(FakeAPIError):
        with fb.guard("openai"):
            raise FakeAPIError(500)
    assert fb.status("openai")[0]["state"] == "open"


def test_breaker_open_carries_retry_in_ms(sidecar):
    fb = Fusebox(sidecar.socket)
    for _ in range(3):
        with pytest.raises(FakeAPIError):
            with fb.guard("anthropic"):
                raise FakeAPIError(502)
    with pytest.raises(BreakerOpen) as refused:
        with fb.guard("anthropic"):
            pytest.fail("the block must not run while the breaker is open")
    assert refused.value.state == "open"
    assert 0 < refused.value.retry_in_ms <= 500


def test_retry_after_from_a_429_opens_the_breaker(sidecar):
    fb = Fusebox(sidecar.socket)
    with pytest.raises(FakeAPIError):
        with fb.guard("ollama"):
            raise FakeAPIError(429, {"retry-after": "30"})
    with pytest.raises(BreakerOpen) as refused:
        fb.acquire("ollama")
    assert refused.value.retry_in_ms > 25_000


def test_chain_falls_back_in_order_and_reports_each_try(sidecar):
    fb = Fusebox(sidecar.socket)
    tried = []

    def ask():
        for attempt in fb.chain("llm"):
            with attempt:
                tried.append(attempt.breaker)
                if attempt.breaker in ("openai", "anthropic"):
                    raise FakeAPIError(503)
                return f"answer from {attempt.breaker}"

    assert ask() == "answer from ollama"
    assert tried == ["openai", "anthropic", "ollama"]
    assert fb.status("openai")[0]["consecutive_failures"] == 1


def test_chain_skips_open_breakers_and_raises_when_none_is_left(sidecar):
    fb = Fusebox(sidecar.socket)
    sidecar.admin('{"op":"force","breaker":"openai","state":"open"}')
    served = []
    for attempt in fb.chain("llm"):
        with attempt:
            served.append(attempt.breaker)
    assert served == ["anthropic"]
    for name in ("anthropic", "ollama"):
        sidecar.admin(f'{{"op":"force","breaker":"{name}","state":"open"}}')
    with pytest.raises(ChainExhausted) as exhausted:
        for attempt in fb.chain("llm"):
            with attempt:
                pytest.fail("no breaker should be granted")
    assert [s["breaker"] for s in exhausted.value.skipped] == ["openai", "anthropic", "ollama"]


def test_when_every_try_fails_the_last_error_is_raised(sidecar):
    fb = Fusebox(sidecar.socket)
    with pytest.raises(FakeAPIError) as raised:
        for attempt in fb.chain("llm"):
            with attempt:
                raise FakeAPIError(500 + len(attempt.breaker))
    assert raised.value.status_code == 500 + len("ollama")


def test_decorator_form(sidecar):
    fb = Fusebox(sidecar.socket)

    @fb.protect("openai")
    def call(x):
        return x * 2

    assert call(21) == 42


def test_fifty_threads_share_one_client(sidecar):
    fb = Fusebox(sidecar.socket, pool_size=16)
    errors = []

    def work():
        try:
            for _ in range(40):
                with fb.guard("anthropic"):
                    pass
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    [anthropic] = fb.status("anthropic")
    assert anthropic["permits_in_flight"] == 0 and anthropic["state"] == "closed"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_its_own_connections(sidecar):
    fb = Fusebox(sidecar.socket)
    with fb.guard("openai"):
        pass  # the parent now has a pooled connection
    pid = os.fork()
    if pid == 0:  # child: the inherited client must work and not disturb the parent
        code = 0
        try:
            for _ in range(20):
                with fb.guard("openai"):
                    pass
        except BaseException:
            code = 1
        os._exit(code)
    for _ in range(20):
        with fb.guard("openai"):
            pass
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert fb.status("openai")[0]["permits_in_flight"] == 0


def test_sidecar_restart_mid_run(sidecar):
    fb = Fusebox(sidecar.socket, reconnect_interval=0.05)
    with fb.guard("openai"):
        pass
    sidecar.stop()
    with fb.guard("openai") as call:  # fail-open while it is down: no exception reaches the app
        assert call.permit.degraded
    sidecar.start()
    deadline = time.time() + 5
    while True:
        with fb.guard("openai") as call:
            if not call.permit.degraded:
                break
        assert time.time() < deadline, "the client never reconnected"
        time.sleep(0.05)  # poll


@pytest.mark.parametrize("policy", ["allow", "deny", "raise"])
def test_sidecar_absent_at_start(stopped_sidecar, policy):
    fb = Fusebox(stopped_sidecar.socket, on_unavailable=policy)
    if policy == "allow":
        with fb.guard("openai") as call:
            assert call.permit.degraded
    elif policy == "deny":
        with pytest.raises(BreakerOpen):
            fb.acquire("openai")
    else:
        with pytest.raises(SidecarUnavailable):
            fb.acquire("openai")


def test_unknown_names_raise_protocol_errors(sidecar):
    fb = Fusebox(sidecar.socket)
    with pytest.raises(ProtocolError) as error:
        fb.acquire("nope")
    assert error.value.code == "unknown_breaker"
    with pytest.raises(ValueError):
        Fusebox(sidecar.socket, on_unavailable="maybe")


def test_while_the_sidecar_is_down_a_chain_is_walked_in_its_known_order(stopped_sidecar):
    fb = Fusebox(stopped_sidecar.socket, chains={"llm": ["openai", "anthropic"]})
    tried = []
    for attempt in fb.chain("llm"):
        with attempt:
            tried.append(attempt.breaker)
            if attempt.breaker == "openai":
                raise FakeAPIError(503)
    assert tried == ["openai", "anthropic"]


def test_the_client_learns_chains_from_the_sidecar(sidecar):
    fb = Fusebox(sidecar.socket)
    fb.status()
    assert fb.chains == {"llm": ["openai", "anthropic", "ollama"]}


def test_a_pooled_connection_closed_for_idleness_is_replaced_without_failing_open(stopped_sidecar):
    from conftest import CONFIG
    (stopped_sidecar.folder / "fusebox.yaml").write_text(CONFIG + "idle_timeout: 1s\n")
    stopped_sidecar.start()
    try:
        with Fusebox(stopped_sidecar.socket, pool_size=1, fast_path=False) as fb:  # the socket's pool is tested
            first = fb.acquire("openai")
            fb.report(first, status=200)
            pooled = fb._idle[0]
            deadline = time.monotonic() + 10
            while not pooled.closed_by_peer():  # idle_timeout: 1s, then the sidecar closes it
                assert time.monotonic() < deadline, "the sidecar never closed the idle pooled connection"
                time.sleep(0.05)  # poll
            second = fb.acquire("openai")
            assert not second.degraded and second.id is not None
            fb.report(second, status=200)
    finally:
        stopped_sidecar.stop()


def test_one_late_answer_fails_that_call_open_without_marking_the_sidecar_down(sidecar):
    # The sidecar stalls (SIGSTOP) past one request's timeout: that call fails open and is counted;
    # the next call asks the sidecar again instead of failing open for reconnect_interval.
    # The socket path is tested: a stalled sidecar's state file still looks fresh for a moment.
    fb = Fusebox(sidecar.socket, timeout=0.3, reconnect_interval=60, fast_path=False)
    fb.status()
    stop(sidecar.process.pid)
    try:
        late = fb.acquire("openai")
    finally:
        os.kill(sidecar.process.pid, signal.SIGCONT)
    assert late.degraded
    permit = fb.acquire("openai")
    assert not permit.degraded, "a single timeout must not mark the whole sidecar down"
    fb.report(permit, outcome="success")
    assert fb.stats() == {"fail_open": 1, "timeouts": 1, "unreachable": 0, "fast_path": 0}
    # The next connection's hello tells the sidecar about the call that went out unprotected.
    assert fb._unreported_fail_open == 0
    fb.close()


def stop(pid: int) -> None:
    """SIGSTOP, then wait until every thread has stopped (one running on another core finishes its slice first)."""
    os.kill(pid, signal.SIGSTOP)
    for _ in range(200):
        stats = [open(f"/proc/{pid}/task/{task}/stat").read() for task in os.listdir(f"/proc/{pid}/task")]
        if all(" T " in stat[stat.rindex(")"):] for stat in stats):
            return
        time.sleep(0.005)  # poll
