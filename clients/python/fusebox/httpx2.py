"""httpx transports that put every request to a provider under a breaker.

    import httpx2, openai
    from fusebox import Fusebox
    from fusebox.httpx2 import Transport

    client = openai.OpenAI(http_client=httpx2.Client(transport=Transport(Fusebox())))

Each request whose host (or host and path prefix) maps to a breaker is
acquired first (``BreakerOpen`` when refused: the openai 3.x and anthropic
2.x SDKs let it through to the app as it is), then reported from its
response: the status (the breaker's ``classify`` rules decide), Retry-After
(seconds or an HTTP-date, or ``retry-after-ms``), the provider's error text,
and the token ``usage`` of a JSON body. The report is sent when the body has
been read to its end, or when the response is closed early (``cancelled``)
or its stream fails (timeout or connection): a stream that dies halfway is a
failure, not a success. Requests to other hosts go under ``default_breaker``, or
pass through with one warning per host, or are refused when ``strict`` (see
``Router`` in ``fusebox._transport``).

Needs httpx2 (``pip install fusebox-client[httpx2]``); the rest of the package
does not.

The openai (3.x) and anthropic (2.x) SDKs take ``httpx2`` clients: use this module with them.
"""
from __future__ import annotations

import httpx2 as _http

from ._transport import DEFAULT_ROUTES, build

_built = build(_http)
Transport = _built.Transport
AsyncTransport = _built.AsyncTransport
breaker_for = _built.breaker_for

__all__ = ["DEFAULT_ROUTES", "AsyncTransport", "Transport", "breaker_for"]
