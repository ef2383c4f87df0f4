"""Turning an exception into what a report says, without importing any SDK.

The OpenAI and Anthropic SDKs raise errors with ``status_code`` and a
``response`` carrying headers; httpx raises ``HTTPStatusError`` (with
``response.status_code``) and ``TimeoutException`` / ``ConnectError``. These
are recognised by their attributes and class names, so the client works with
whichever of them the app uses, and with none.
"""
from __future__ import annotations

import datetime
import email.utils
from typing import Any, Callable, Dict, Optional

Classifier = Callable[[BaseException], Optional[Dict[str, Any]]]


def _status(exc: BaseException) -> Optional[int]:
    for holder in (exc, getattr(exc, "response", None)):
        for name in ("status_code", "status"):
            value = getattr(holder, name, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


def retry_after_ms(headers: Any) -> Optional[float]:
    """Milliseconds from ``retry-after-ms`` (OpenAI's), or ``Retry-After`` in
    either form: delay-seconds or an HTTP-date (RFC 9110). None when absent or
    unreadable; a date in the past is 0."""
    if headers is None:
        return None
    try:
        value = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
        if value is not None:
            return max(0.0, float(value))
        value = headers.get("retry-after") or headers.get("Retry-After")
    except (TypeError, ValueError, AttributeError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value) * 1000)
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds() * 1000)


def _retry_after_ms(exc: BaseException) -> Optional[float]:
    response = getattr(exc, "response", None)
    return retry_after_ms(getattr(response, "headers", None) or getattr(exc, "headers", None))


def _kind(exc: BaseException) -> Optional[str]:
    names = [cls.__name__.lower() for cls in type(exc).__mro__]
    if isinstance(exc, TimeoutError) or any("timeout" in n for n in names):
        return "timeout"
    if isinstance(exc, ConnectionError) or any("connect" in n for n in names):
        return "connection"
    return None


def default_classifier(exc: BaseException) -> Dict[str, Any]:
    """The report fields for an exception: ``status`` when one can be found,
    else ``error_kind`` timeout/connection, else a plain failure."""
    fields: Dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    status = _status(exc)
    if status is not None:
        fields["status"] = status
        retry = _retry_after_ms(exc)
        if retry is not None:
            fields["retry_after_ms"] = retry
        return fields
    kind = _kind(exc)
    if kind == "timeout":
        fields["outcome"] = "timeout"
        fields["error_kind"] = "timeout"
    elif kind == "connection":
        fields["error_kind"] = "connection"
    else:
        fields["outcome"] = "failure"
    return fields
