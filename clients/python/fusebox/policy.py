"""What the sync and asyncio clients share: settings, what to do while the
sidecar is unreachable, and how a report and an exception's fields are built."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from ._statefile import StateBoard
from .classify import Classifier, default_classifier
from .errors import BreakerOpen, ChainExhausted, SidecarUnavailable

log = logging.getLogger("fusebox")
UNAVAILABLE_POLICIES = ("allow", "deny", "raise")


class Permit:
    """A granted call. ``degraded`` permits were made up by the client while
    the sidecar was unreachable (policy ``allow``): reporting them does nothing.
    A routed permit says which ``strategy`` chose it and ``why`` (``order``,
    ``latency``, ``refresh``, ``cost`` or ``weight``), with the ``figure`` used
    (milliseconds, cost or weight) when there was one. A ``fast`` permit was
    taken from the sidecar's state file without asking (``generation`` is the
    breaker's generation then): its outcome goes back as a ``record``.
    ``ttl_ms`` is the breaker's ``permit_ttl``: a permit not renewed within it
    expires and counts as a timeout."""

    __slots__ = ("id", "breaker", "probe", "degraded", "strategy", "why", "figure", "generation", "ttl_ms")

    def __init__(self, id: Optional[str], breaker: str, probe: bool = False, degraded: bool = False,
                 strategy: Optional[str] = None, why: Optional[str] = None, figure: Optional[float] = None,
                 generation: Optional[int] = None, ttl_ms: Optional[int] = None) -> None:
        self.generation = generation
        self.ttl_ms = ttl_ms
        self.id = id
        self.breaker = breaker
        self.probe = probe
        self.degraded = degraded
        self.strategy = strategy
        self.why = why
        self.figure = figure

    @classmethod
    def routed(cls, answer: Dict[str, Any]) -> "Permit":
        """The permit of a granted ``route`` answer, with its strategy's reason."""
        figure = next((answer[key] for key in ("latency_ms", "cost", "weight") if answer.get(key) is not None), None)
        return cls(answer["permit"], answer["breaker"], bool(answer.get("probe")),
                   strategy=answer.get("strategy"), why=answer.get("why"), figure=figure, ttl_ms=answer.get("ttl_ms"))

    @property
    def fast(self) -> bool:
        return self.generation is not None

    def __repr__(self) -> str:
        return f"Permit({self.breaker!r}, id={self.id!r}, probe={self.probe}, degraded={self.degraded}, fast={self.fast})"


class ClientPolicy:
    """Settings and fail-open behaviour common to ``Fusebox`` and ``AsyncFusebox``."""

    def __init__(self, socket_path: Optional[str], timeout: float, on_unavailable: str, pool_size: int,
                 reconnect_interval: float, classifiers: Sequence[Classifier],
                 chains: Optional[Dict[str, List[str]]], fast_path: bool = True) -> None:
        if on_unavailable not in UNAVAILABLE_POLICIES:
            raise ValueError(f"on_unavailable must be one of {UNAVAILABLE_POLICIES}, got {on_unavailable!r}")
        self.socket_path = socket_path or os.environ.get("FUSEBOX_SOCKET", "./fusebox.sock")
        self.timeout = timeout
        self.on_unavailable = on_unavailable
        self.pool_size = pool_size
        self.reconnect_interval = reconnect_interval
        self.classifiers = list(classifiers)
        # Chains as the sidecar last described them (hello), so that while it
        # is unreachable a chain is still walked in its order.
        self.chains: Dict[str, List[str]] = dict(chains or {})
        # Each chain's strategy, from the same hello: only an ordered chain's route may take the fast path.
        self.strategies: Dict[str, str] = {}
        self._down_since: Optional[float] = None
        self._next_attempt = 0.0
        # What stats() reports; fail-opens not yet told to the sidecar go in the next hello.
        self._counts_lock = threading.Lock()
        self._counts = {"fail_open": 0, "timeouts": 0, "unreachable": 0, "fast_path": 0}
        # The sidecar's posted states (docs/protocol.md, "The fast path"): a closed breaker without budgets is called without asking.
        self._board = StateBoard(self.socket_path) if fast_path else None
        self._unreported_fail_open = 0
        self._breaker_names: Tuple[Optional[FrozenSet[str]], float] = (None, 0.0)
        self._fail_open_logged_at = 0.0
        self._fail_open_since_log = 0

    def stats(self) -> Dict[str, int]:
        """Counters since this client was made: ``fail_open`` (calls let through
        without a breaker because the sidecar was late or unreachable), ``timeouts``
        (requests the sidecar did not answer in ``timeout``), ``unreachable``
        (requests that found no sidecar), ``fast_path`` (calls let through on
        the sidecar's posted state, without asking)."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, key: str) -> None:
        with self._counts_lock:
            self._counts[key] += 1

    def _hello_message(self) -> Dict[str, Any]:
        """The hello a new connection starts with; it carries the fail-opens the sidecar has not heard of."""
        from . import __version__
        message: Dict[str, Any] = {"op": "hello", "protocol": 1, "client": f"fusebox-python/{__version__}"}
        with self._counts_lock:
            if self._unreported_fail_open:
                message["fail_open"] = self._unreported_fail_open
        return message

    def _hello_sent(self, message: Dict[str, Any]) -> None:
        with self._counts_lock:
            self._unreported_fail_open -= message.get("fail_open", 0)

    @staticmethod
    def _is_timeout(error: BaseException) -> bool:
        return isinstance(error, (socket.timeout, TimeoutError, asyncio.TimeoutError))

    def classify(self, error: BaseException) -> Dict[str, Any]:
        """Report fields for an exception: your classifiers first, then the default."""
        for classifier in self.classifiers:
            fields = classifier(error)
            if fields:
                return fields
        return default_classifier(error)

    def _acquire_message(self, breaker: str, cost: Optional[int]) -> Dict[str, Any]:
        # The client's own deadline: a queued acquire is refused before it, never mistaken for a dead sidecar.
        message: Dict[str, Any] = {"op": "acquire", "breaker": breaker, "timeout_ms": int(self.timeout * 1000)}
        if cost is not None:
            message["cost"] = cost
        return message

    @staticmethod
    def _route_message(chain: str, exclude: Sequence[str], cost: Optional[int],
                       requires: Sequence[str] = ()) -> Dict[str, Any]:
        message: Dict[str, Any] = {"op": "route", "chain": chain, "exclude": list(exclude)}
        if cost is not None:
            message["cost"] = cost
        if requires:
            message["requires"] = list(requires)
        return message

    def _fast_permit(self, breaker: str) -> Optional[Permit]:
        """A permit without asking, when the state file says the breaker admits every call; else None."""
        board = self._board
        if board is None:
            return None
        seen = board.read(breaker)
        if seen is None or not seen[2]:
            return None
        self._count("fast_path")
        return Permit(None, breaker, generation=seen[1])

    def _fast_route(self, chain: str, exclude: Sequence[str], requires: Sequence[str]) -> Optional[Permit]:
        """A route without asking: only along an ``ordered`` chain whose first member admits locally,
        with nothing excluded or required (a route that would skip a member asks the sidecar)."""
        if exclude or requires or self.strategies.get(chain) != "ordered" or not self.chains.get(chain):
            return None
        permit = self._fast_permit(self.chains[chain][0])
        if permit is not None:
            permit.strategy, permit.why = "ordered", "order"
        return permit

    def _unconfirmed_state_file(self) -> bool:
        """The state file names a sidecar no hello has named (a first look, or a restart): one hello will say."""
        board = self._board
        if board is None or board.unconfirmed is None or self._retrying():
            return False
        board.unconfirmed = None
        return True

    def _confirming_hello(self) -> Dict[str, Any]:
        """A hello sent only to learn which state file the sidecar made (fail-opens go with connections' own)."""
        message = self._hello_message()
        message.pop("fail_open", None)
        return message

    def _learn(self, hello: Dict[str, Any]) -> None:
        """What a hello answer says: chains, their members and strategies, and the state file to trust."""
        if self._board is not None:
            self._board.trust(hello.get("state_file"))
        if isinstance(hello.get("chains"), dict):
            self.chains = hello["chains"]
        if isinstance(hello.get("strategies"), dict):
            self.strategies = hello["strategies"]
        if isinstance(hello.get("breakers"), list):
            self._breaker_names = (frozenset(name for name in hello["breakers"] if isinstance(name, str)), time.monotonic())

    #: How long the breaker names a hello told stay believed (a reload may add per-model breakers).
    BREAKER_NAMES_TTL = 30.0

    def _fresh_breaker_names(self) -> Optional[FrozenSet[str]]:
        """The sidecar's breaker names from a recent hello, or None if none is recent."""
        names, at = self._breaker_names
        return names if names is not None and time.monotonic() - at < self.BREAKER_NAMES_TTL else None

    @staticmethod
    def _report_message(permit: Permit, fields: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The report request, or None for a degraded permit (nothing to report).
        A fast permit's is a ``record``; one that cannot have failed goes with
        ``"reply": false`` and is not waited for. A failure waits for its answer,
        so the breaker has counted it before this worker's next call looks."""
        message: Dict[str, Any]
        if permit.generation is not None:
            message = {"op": "record", "breaker": permit.breaker, "generation": permit.generation}
        elif permit.degraded or permit.id is None:
            return None
        else:
            message = {"op": "report", "permit": permit.id}
        message.update({key: value for key, value in fields.items() if value is not None})
        if not {"outcome", "status", "error_kind"} & message.keys():
            message["outcome"] = "success"
        if permit.generation is not None and _cannot_have_failed(message):
            message["reply"] = False
        return message

    def _retrying(self) -> bool:
        """The sidecar is known to be down and it is not yet time to try again."""
        return self._down_since is not None and time.monotonic() < self._next_attempt

    def _note_down(self, error: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("fusebox: sidecar at %s unreachable (%s); policy %r until it is back",
                        self.socket_path, error, self.on_unavailable)
        self._next_attempt = time.monotonic() + self.reconnect_interval

    def _note_up(self) -> None:
        if self._down_since is not None:
            log.warning("fusebox: sidecar at %s reachable again", self.socket_path)
            self._down_since = None

    def _failed_open(self, name: str) -> None:
        """Counts a call let through without a breaker, and says so at most every 10 s."""
        now = time.monotonic()
        with self._counts_lock:
            self._counts["fail_open"] += 1
            self._unreported_fail_open += 1
            self._fail_open_since_log += 1
            if now - self._fail_open_logged_at < 10:
                return
            count, self._fail_open_since_log, self._fail_open_logged_at = self._fail_open_since_log, 0, now
        log.warning("fusebox: fail-open: %d call(s) let through without a breaker (last: %s); the sidecar at %s was "
                    "late or unreachable", count, name, self.socket_path)

    def _unavailable(self, breaker: str) -> Permit:
        if self.on_unavailable == "allow":
            self._failed_open(breaker)
            return Permit(None, breaker, degraded=True)
        if self.on_unavailable == "deny":
            raise BreakerOpen(breaker, "unavailable", None)
        raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path} is unreachable")

    def _unavailable_route(self, chain: str, exclude: Sequence[str]) -> Permit:
        """Fail-open routing: the chain's known members in order, without breakers."""
        if self.on_unavailable == "allow" and chain in self.chains:
            left = [member for member in self.chains[chain] if member not in exclude]
            if not left:
                raise ChainExhausted(chain, [])
            self._failed_open(left[0])
            return Permit(None, left[0], degraded=True)
        return self._unavailable(chain)


def _cannot_have_failed(message: Dict[str, Any]) -> bool:
    """Success or a non-call by what the client sent: no breaker counts it toward a trip."""
    if "error_kind" in message:
        return False
    status = message.get("status")
    if status is not None:
        return isinstance(status, int) and status < 400
    return message.get("outcome") in ("success", "cancelled", "ignored")
