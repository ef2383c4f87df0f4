"""The synchronous client: a thread-safe connection pool over the sidecar's
Unix socket, and the ``guard`` / ``chain`` / decorator forms apps use."""
from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import select
import socket
import threading
import time
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Optional, Sequence, TypeVar

from .classify import Classifier
from .errors import BreakerOpen, ChainExhausted, ProtocolError, SidecarUnavailable
from .listen import Listener
from ._records import RecordLane
from ._renewer import PermitRenewer
from .policy import ClientPolicy, Permit

log = logging.getLogger("fusebox")
T = TypeVar("T")

class _Connection:
    """One socket with its own read buffer; used by one thread at a time."""

    def __init__(self, path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except BaseException:
            self.sock.close()
            raise
        self.buffer = b""
        self.pid = os.getpid()
        self.reused = False  # taken from the pool: the sidecar may have closed it meanwhile

    def closed_by_peer(self) -> bool:
        """Whether the sidecar closed this connection (idle_timeout), without waiting: a peek."""
        # A socket with a timeout waits for readability before any recv, MSG_DONTWAIT or not: poll first, for no time.
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            if not poller.poll(0):
                return False
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def send_lines(self, lines: bytes) -> None:
        """Sends requests that are never answered (``"reply": false``), whole lines."""
        self.sock.sendall(lines)

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        self.sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the sidecar closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        answer: Dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Fusebox(ClientPolicy):
    """A client for one sidecar, safe to share between threads.

    ``on_unavailable`` decides what happens when the sidecar cannot be
    reached: ``"allow"`` (default) lets the call through so the sidecar is
    never the reason the app goes down, ``"deny"`` refuses it with
    ``BreakerOpen``, ``"raise"`` raises ``SidecarUnavailable``. Either way it
    logs once and tries again at most every ``reconnect_interval`` seconds.
    """

    def __init__(self, socket_path: Optional[str] = None, *, timeout: float = 2.0, on_unavailable: str = "allow",
                 pool_size: int = 8, reconnect_interval: float = 1.0,
                 classifiers: Sequence[Classifier] = (), chains: Optional[Dict[str, List[str]]] = None,
                 fast_path: bool = True) -> None:
        super().__init__(socket_path, timeout, on_unavailable, pool_size, reconnect_interval, classifiers, chains,
                         fast_path)
        self._lock = threading.Lock()
        self._idle: List[_Connection] = []
        self._pid = os.getpid()
        self._renewer = PermitRenewer(self._renew_held)
        self._records = RecordLane(self._connect)
        _forget_after_fork(self)

    # -- the protocol ---------------------------------------------------------

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        """Sends one request and returns the answer (``ok`` true); raises
        ``ProtocolError`` for an error answer and ``SidecarUnavailable`` when
        the sidecar cannot be reached."""
        connection = self._take()
        try:
            answer = connection.request(message)
        except (OSError, ValueError) as error:
            connection.close()
            if connection.reused and isinstance(error, ConnectionError):
                # A pooled connection the sidecar closed while it sat idle (idle_timeout):
                # the request never reached it, so it goes once more, on another connection.
                return self.request(message)
            if self._is_timeout(error):
                # Late, not gone: this call is handled by the policy, the next one asks again.
                # (The connection is closed: its answer may still come and must not be read as the next one's.)
                self._count("timeouts")
            else:
                self._count("unreachable")
                self._mark_down(error)
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path}: {error}") from error
        self._give(connection)
        self._mark_up()
        if not answer.get("ok"):
            problem = answer.get("error") or {}
            raise ProtocolError(problem.get("code", "unknown"), problem.get("message", ""))
        return answer

    def acquire(self, breaker: str, cost: Optional[int] = None) -> Permit:
        """A permit for one call to ``breaker``, or ``BreakerOpen``. ``cost``:
        the call's estimated tokens, for a breaker with a token budget. A
        breaker with a queue may take up to its queue timeout to answer: set
        ``timeout`` above it. A closed breaker without budgets is not asked:
        its state file says so (the fast path)."""
        fast = self._fast_permit(breaker)
        if fast is None and self._confirm_state_file():
            fast = self._fast_permit(breaker)
        if fast is not None:
            return fast
        try:
            answer = self.request(self._acquire_message(breaker, cost))
        except SidecarUnavailable:
            return self._unavailable(breaker)
        if not answer["allowed"]:
            raise BreakerOpen(breaker, answer["state"], answer.get("retry_in_ms"), reason=answer.get("reason"))
        return Permit(answer["permit"], breaker, bool(answer.get("probe")), ttl_ms=answer.get("ttl_ms"))

    def route(self, chain: str, exclude: Sequence[str] = (), cost: Optional[int] = None,
              requires: Sequence[str] = ()) -> Permit:
        """A permit from the first breaker of ``chain`` that grants one."""
        fast = self._fast_route(chain, exclude, requires)  # a member that admits locally has no budget: cost is moot
        if fast is None and self._confirm_state_file():
            fast = self._fast_route(chain, exclude, requires)
        if fast is not None:
            return fast
        try:
            answer = self.request(self._route_message(chain, exclude, cost, requires))
        except SidecarUnavailable:
            return self._unavailable_route(chain, exclude)
        if not answer["allowed"]:
            raise ChainExhausted(chain, answer.get("skipped", []))
        return Permit.routed(answer)

    def report(self, permit: Permit, *, outcome: Optional[str] = None, status: Optional[int] = None,
               latency_ms: Optional[float] = None, error: Optional[str] = None,
               retry_after_ms: Optional[float] = None, error_kind: Optional[str] = None,
               tokens_used: Optional[int] = None, ttfb_ms: Optional[float] = None) -> Optional[str]:
        """Reports how a permitted call went; returns the breaker's state after it."""
        message = self._report_message(permit, {
            "outcome": outcome, "status": status, "latency_ms": latency_ms, "error": error,
            "retry_after_ms": retry_after_ms, "error_kind": error_kind, "tokens_used": tokens_used, "ttfb_ms": ttfb_ms,
        })
        if message is None:
            return None
        if message.get("reply") is False:
            self._records.add(message)  # a success: batched (see RecordLane)
            return None
        try:
            if permit.fast:
                return self._record_in_order(message)
            return self.request(message).get("state")
        except SidecarUnavailable:
            return None  # the sidecar went away: it released the permit itself
        except ProtocolError as problem:
            if problem.code in ("unknown_permit", "unknown_breaker"):
                # Expired, or released by a reconnect; or a fast permit's breaker removed by a reload.
                log.debug("fusebox: %s", problem)
                return None
            raise

    def renew(self, permit: Permit) -> bool:
        """Keeps ``permit`` alive while its call runs: its deadline moves to the
        breaker's ``permit_ttl`` from now. ``guard``, chain attempts and the
        httpx transports do this for their calls; call it for a permit from
        ``acquire`` whose call may outlive ``permit.ttl_ms``. False when the
        sidecar no longer has the permit (reported, expired, or restarted)."""
        if permit.id is None or permit.degraded or permit.fast:
            return True
        try:
            self.request({"op": "renew", "permit": permit.id})
        except ProtocolError as problem:
            if problem.code == "unknown_permit":
                return False
            raise
        return True

    def breaker_names(self) -> FrozenSet[str]:
        """The sidecar's breakers, as a hello told them (asked again after 30 s); empty when unreachable."""
        names = self._fresh_breaker_names()
        if names is None:
            try:
                self._learn(self.request(self._confirming_hello()))
            except (SidecarUnavailable, ProtocolError):
                return frozenset()
            names = self._fresh_breaker_names()
        return names or frozenset()

    def _renew_held(self, permit: Permit) -> bool:
        """The renewer's call: a sidecar out of reach is tried again at the next interval."""
        try:
            return self.renew(permit)
        except (SidecarUnavailable, ProtocolError) as problem:
            log.debug("fusebox: renewing %r: %s", permit, problem)
            return True

    def _record_in_order(self, message: Dict[str, Any]) -> Optional[str]:
        """A fast-path record that may be a failure: behind the successes still waiting, on their
        connection, so the breaker counts the calls in the order they ended; answered before return."""
        try:
            answer = self._records.request(message)
        except (OSError, ValueError) as error:
            self._count("timeouts" if self._is_timeout(error) else "unreachable")
            if not self._is_timeout(error):
                self._mark_down(error)
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path}: {error}") from error
        self._mark_up()
        if not answer.get("ok"):
            problem = answer.get("error") or {}
            raise ProtocolError(problem.get("code", "unknown"), problem.get("message", ""))
        state: Optional[str] = answer.get("state")
        return state

    def flush(self) -> None:
        """Sends the successes the fast path still holds (at most a millisecond's worth); done at exit and before a fork."""
        try:
            self._records.flush()
        except SidecarUnavailable:
            pass

    def _confirm_state_file(self) -> bool:
        """Asks hello which state file the sidecar made, when the file names one not yet heard of; True if asked."""
        if not self._unconfirmed_state_file():
            return False
        try:
            self._learn(self.request(self._confirming_hello()))
        except (SidecarUnavailable, ProtocolError):
            pass
        return True

    def status(self, breaker: Optional[str] = None) -> List[Dict[str, Any]]:
        message: Dict[str, Any] = {"op": "status"}
        if breaker is not None:
            message["breaker"] = breaker
        breakers: List[Dict[str, Any]] = self.request(message)["breakers"]
        return breakers

    # -- the forms apps use ---------------------------------------------------

    def guard(self, breaker: str, cost: Optional[int] = None) -> "Guard":
        """``with fb.guard("openai") as call: …`` acquires a permit (or raises
        ``BreakerOpen``), runs the block, and reports success, or the failure
        the exception describes. ``call.status = 429`` reports a status;
        ``cost`` charges a token budget, and ``call.tokens_used = n`` settles it."""
        return Guard(self, breaker, cost)

    def chain(self, name: str, cost: Optional[int] = None, requires: Sequence[str] = ()) -> Iterator["Attempt"]:
        """Walks a fallback chain::

            for attempt in fb.chain("llm"):
                with attempt:
                    return call_provider(attempt.breaker)

        A failing attempt is reported and the next breaker is tried; when no
        breaker is left the last error is raised (``ChainExhausted`` if none
        could even be tried). ``requires`` names capabilities the call needs:
        members without them are passed over. ``attempt.permit.why`` says
        why the chain's strategy chose each member."""
        tried: List[str] = []
        last_error: Optional[BaseException] = None
        while True:
            try:
                permit = self.route(name, exclude=tried, cost=cost, requires=requires)
            except ChainExhausted:
                if last_error is not None:
                    raise last_error
                raise
            attempt = Attempt(self, permit)
            yield attempt
            if attempt.succeeded:
                return
            if attempt.error is None:
                return  # the block neither failed nor finished: nothing more to try
            tried.append(permit.breaker)
            last_error = attempt.error

    def listen(self, callback: Callable[[Dict[str, Any]], None]) -> "Listener":
        """Calls ``callback(event)`` for every transition, on a background thread, until ``.stop()``."""
        return Listener(self.socket_path, callback, self.reconnect_interval)

    def protect(self, breaker: str, cost: Optional[int] = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """The decorator form of ``guard``."""
        def decorate(function: Callable[..., T]) -> Callable[..., T]:
            @functools.wraps(function)
            def wrapper(*args: Any, **kwargs: Any) -> T:
                with self.guard(breaker, cost):
                    return function(*args, **kwargs)
            return wrapper
        return decorate

    def close(self) -> None:
        self.flush()
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __enter__(self) -> "Fusebox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the pool ---------------------------------------------------------------

    def _take(self) -> _Connection:
        with self._lock:
            if self._pid != os.getpid():
                self._after_fork()
            while self._idle:
                connection = self._idle.pop()
                if connection.pid == self._pid:
                    connection.reused = True
                    return connection
        return self._connect()

    def _connect(self) -> _Connection:
        """A new connection that has said hello (none while the sidecar is known down and not yet due again)."""
        if self._retrying():
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path} is unreachable (retrying)")
        try:
            connection = _Connection(self.socket_path, self.timeout)
            greeting = self._hello_message()
            hello = connection.request(greeting)
        except (OSError, ValueError) as error:
            self._count("timeouts" if self._is_timeout(error) else "unreachable")
            if not self._is_timeout(error):
                self._mark_down(error)
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path}: {error}") from error
        self._hello_sent(greeting)
        self._learn(hello)
        return connection

    def _give(self, connection: _Connection) -> None:
        with self._lock:
            if connection.pid == os.getpid() and len(self._idle) < self.pool_size:
                self._idle.append(connection)
                return
        connection.close()

    def _after_fork(self) -> None:
        # The child inherited the parent's sockets: using them would interleave
        # the two processes' requests. Drop them (closing our copy of a file
        # descriptor does not touch the parent's) and start afresh.
        for connection in self._idle:
            connection.close()
        self._idle = []
        self._pid = os.getpid()
        self._renewer = PermitRenewer(self._renew_held)  # the parent's thread is not in the child
        self._records.forget()

    def _mark_down(self, error: BaseException) -> None:
        with self._lock:
            self._note_down(error)

    def _mark_up(self) -> None:
        if self._down_since is not None:
            with self._lock:
                self._note_up()


class Guard:
    """``with fb.guard(name) as call:`` — see ``Fusebox.guard``."""

    def __init__(self, client: Fusebox, breaker: str, cost: Optional[int] = None) -> None:
        self.client = client
        self.breaker = breaker
        self.cost = cost
        self.permit: Optional[Permit] = None
        self.status: Optional[int] = None
        #: Set by the block: the tokens the provider counted, to settle ``cost``.
        self.tokens_used: Optional[int] = None
        self._started = 0.0

    def __enter__(self) -> "Guard":
        self.permit = self.client.acquire(self.breaker, self.cost)
        self.client._renewer.hold(self.permit)
        self._started = time.monotonic()
        return self

    def __exit__(self, kind: Any, error: Optional[BaseException], trace: Any) -> None:
        assert self.permit is not None
        self.client._renewer.drop(self.permit)
        latency = (time.monotonic() - self._started) * 1000
        permit = self.permit
        if error is None and self.status is None and self.tokens_used is None and permit.generation is not None:
            self.client._records.add_success(permit.breaker, permit.generation, latency)  # the fast path's common case
            return
        if error is None:
            if self.status is not None:
                self.client.report(self.permit, status=self.status, latency_ms=latency, tokens_used=self.tokens_used)
            else:
                self.client.report(self.permit, outcome="success", latency_ms=latency, tokens_used=self.tokens_used)
        elif isinstance(error, Exception):
            self.client.report(self.permit, latency_ms=latency, tokens_used=self.tokens_used, **self.client.classify(error))
        else:  # KeyboardInterrupt, SystemExit, GeneratorExit: the app gave up
            self.client.report(self.permit, outcome="cancelled")


class Attempt(Guard):
    """One try along a chain: like a guard, but a failure is reported and
    swallowed so the chain can go on to the next breaker."""

    def __init__(self, client: Fusebox, permit: Permit) -> None:
        super().__init__(client, permit.breaker)
        self.permit = permit
        self.succeeded = False
        self.error: Optional[BaseException] = None

    def __enter__(self) -> "Attempt":
        assert self.permit is not None
        self.client._renewer.hold(self.permit)
        self._started = time.monotonic()
        return self

    # An attempt swallows its failure (returns True) so the chain goes on: unlike a guard.
    def __exit__(self, kind: Any, error: Optional[BaseException], trace: Any) -> bool:  # type: ignore[override]
        super().__exit__(kind, error, trace)
        if error is None:
            self.succeeded = True
            return False
        if isinstance(error, Exception):
            self.error = error
            return True
        return False


_clients: "List[Any]" = []


def _forget_after_fork(client: Fusebox) -> None:
    """Registers the client so a forked child drops inherited connections at once."""
    import weakref
    _clients.append(weakref.ref(client))


def _reset_in_child() -> None:
    for ref in list(_clients):
        client = ref()
        if client is not None:
            client._lock = threading.Lock()  # the parent's lock may have been held at fork
            client._after_fork()


def _flush_all() -> None:
    """Before a fork and at exit: every client's waiting successes go out (nothing lost on a clean exit)."""
    for ref in list(_clients):
        client = ref()
        if client is not None:
            client.flush()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_flush_all, after_in_child=_reset_in_child)
atexit.register(_flush_all)
