"""Helpers for tenacity (``@retry(...)``) that respect the breaker: a retry
predicate that never retries ``BreakerOpen`` (the breaker already said no),
and a wait that honours what the refusal or the provider said.

    from tenacity import retry, stop_after_attempt, wait_exponential
    from fusebox.tenacity import retry_unless_breaker_open, wait_retry_in

    @retry(retry=retry_unless_breaker_open, wait=wait_retry_in(wait_exponential()),
           stop=stop_after_attempt(4))
    def ask():
        with fb.guard("openai"):
            return client.chat.completions.create(...)

They are plain callables of tenacity's ``retry_state``: this module does not
import tenacity.
"""
from __future__ import annotations

from typing import Any, Callable, Union

from .classify import _retry_after_ms
from .errors import BreakerOpen


def _exception(retry_state: Any) -> Any:
    outcome = getattr(retry_state, "outcome", None)
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


def retry_unless_breaker_open(retry_state: Any) -> bool:
    """Retry a failed attempt, unless it failed because a breaker refused it."""
    error = _exception(retry_state)
    return error is not None and not isinstance(error, BreakerOpen)


class wait_retry_in:
    """Seconds to wait: a ``BreakerOpen``'s ``retry_in_ms``, or the provider's
    Retry-After on an SDK error (seconds or an HTTP-date), else ``fallback``
    (a tenacity wait, or a number of seconds); never more than ``maximum``."""

    def __init__(self, fallback: Union[Callable[[Any], float], float] = 1.0, maximum: float = 60.0) -> None:
        self.fallback = fallback
        self.maximum = maximum

    def __call__(self, retry_state: Any) -> float:
        error = _exception(retry_state)
        said = None
        if isinstance(error, BreakerOpen) and error.retry_in_ms is not None:
            said = error.retry_in_ms / 1000
        elif error is not None:
            retry_after = _retry_after_ms(error)
            said = None if retry_after is None else retry_after / 1000
        if said is None:
            said = self.fallback(retry_state) if callable(self.fallback) else float(self.fallback)
        return max(0.0, min(float(said), self.maximum))
