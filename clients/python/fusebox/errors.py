"""Exceptions the Fusebox client raises."""
from __future__ import annotations

from typing import Any, Dict, List, Optional


class FuseboxError(Exception):
    """Base class of the client's own errors."""


class BreakerOpen(FuseboxError):
    """The breaker refused the call: do not call the provider now.

    ``retry_in_ms`` says when it may admit again (None when unknown, for
    example a breaker forced open by an operator). ``reason`` is the limit
    that refused: ``open``, or a budget (``concurrency``, ``rate``, ``tokens``)
    while the breaker itself is closed.
    """

    def __init__(self, breaker: str, state: str, retry_in_ms: Optional[int] = None,
                 skipped: Optional[List[Dict[str, Any]]] = None, reason: Optional[str] = None) -> None:
        self.breaker = breaker
        self.state = state
        self.retry_in_ms = retry_in_ms
        self.skipped = skipped or []
        self.reason = reason
        when = f"; retry in {retry_in_ms} ms" if retry_in_ms is not None else ""
        why = f" ({reason})" if reason and reason != "open" else ""
        super().__init__(f"breaker {breaker!r} is {state}{why}{when}")


class ChainExhausted(BreakerOpen):
    """No breaker of a chain could take the call (all open, or all tried)."""

    def __init__(self, chain: str, skipped: List[Dict[str, Any]]) -> None:
        retry: List[int] = [s["retry_in_ms"] for s in skipped if s.get("retry_in_ms") is not None]
        super().__init__(chain, "exhausted", min(retry) if retry else None, skipped)
        self.chain = chain


class UnroutedRequest(FuseboxError):
    """A transport with ``strict=True`` refused a request whose host maps to no breaker."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"no breaker for {host}: add it to routes= or set default_breaker= (strict transports refuse unrouted requests)")


class SidecarUnavailable(FuseboxError):
    """The sidecar could not be reached (with ``on_unavailable="raise"``)."""


class ProtocolError(FuseboxError):
    """The sidecar answered a request with an error (code and message)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")
