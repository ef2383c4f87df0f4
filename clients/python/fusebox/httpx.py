"""The transports of ``fusebox.httpx2`` (see there for what they report and
when), built for plain ``httpx`` clients:

    import httpx
    from fusebox import Fusebox
    from fusebox.httpx import Transport

    http = httpx.Client(transport=Transport(Fusebox()))

Needs httpx (``pip install fusebox-client[httpx]``). The openai 3.x and
anthropic 2.x SDKs take ``httpx2`` clients: use ``fusebox.httpx2`` with them.
"""
from __future__ import annotations

import httpx as _http

from ._transport import DEFAULT_ROUTES, build

_built = build(_http)
Transport = _built.Transport
AsyncTransport = _built.AsyncTransport
breaker_for = _built.breaker_for

__all__ = ["DEFAULT_ROUTES", "AsyncTransport", "Transport", "breaker_for"]
