"""httpx transports that put every request to a provider under a breaker.

    import httpx, openai
    from fusebox import Fusebox
    from fusebox.httpx import Transport

    client = openai.OpenAI(http_client=httpx.Client(transport=Transport(Fusebox())))

Each request whose host (or host and path prefix) maps to a breaker is
acquired first (``BreakerOpen`` when refused: the openai 3.x and anthropic
2.x SDKs let it through to the app as it is), then reported from its
response: the status (the breaker's ``classify`` rules decide), Retry-After
(seconds or an HTTP-date, or ``retry-after-ms``), the provider's error text,
and the token ``usage`` of a JSON body. The report is sent when the body has
been read to its end, or when the response is closed early (``cancelled``)
or its stream fails (timeout or connection): a stream that dies halfway is a
failure, not a success. Requests to other hosts pass through untouched.

Needs httpx (``pip install fusebox-client[httpx]``); the rest of the package
does not.
"""
from __future__ import annotations

import httpx as _http

from ._transport import DEFAULT_ROUTES, build

_built = build(_http)
Transport = _built.Transport
AsyncTransport = _built.AsyncTransport
breaker_for = _built.breaker_for

__all__ = ["DEFAULT_ROUTES", "AsyncTransport", "Transport", "breaker_for"]
