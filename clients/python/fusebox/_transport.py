"""The httpx transports, built for one HTTP module: ``httpx``, or ``httpx2``
(the fork the openai and anthropic SDKs moved to; same API, other classes).
``fusebox.httpx`` and ``fusebox.httpx2`` each build them for theirs."""
from __future__ import annotations

import json
import logging
import threading
import time
from types import ModuleType, SimpleNamespace
from typing import AbstractSet, Any, AsyncIterator, Dict, Iterator, Mapping, Optional, Set, Tuple

from .aio import AsyncFusebox
from .classify import retry_after_ms
from .client import Fusebox
from .errors import UnroutedRequest
from .policy import Permit

log = logging.getLogger("fusebox")

#: The providers' public API hosts, and Ollama's default local port.
DEFAULT_ROUTES: Dict[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "localhost:11434": "ollama",
    "127.0.0.1:11434": "ollama",
}

#: A JSON body is kept (for its usage and error text) up to this size; larger ones are only counted.
_KEEP_BYTES = 1 << 20


def model_of(request: Any) -> Optional[str]:
    """The ``model`` a JSON request body names (OpenAI, Anthropic and Ollama all put it at the top level)."""
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        body = request.content
    except Exception:  # a streamed request body not read yet: no model to see
        return None
    if not body or len(body) > _KEEP_BYTES:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    model = document.get("model") if isinstance(document, dict) else None
    return model if isinstance(model, str) and 0 < len(model) <= 64 else None


class Router:
    """Which breaker a request goes under. Its host (or host and path
    prefix) in ``routes`` (added to ``DEFAULT_ROUTES``, unless
    ``replace_routes`` replaces them) names the provider's breaker; when the
    sidecar also has ``<breaker>/<model>`` for the model the JSON body names,
    that one (per-model breakers). A host in no route goes under
    ``default_breaker`` when given; else it is refused (``strict``) or passed
    through unguarded with one warning per host."""

    #: Hosts remembered for their one warning; past this, one warning a minute covers the rest.
    WARNED_HOSTS = 1000

    def __init__(self, routes: Optional[Mapping[str, str]], replace_routes: Optional[Mapping[str, str]],
                 default_breaker: Optional[str], strict: bool, breaker_for: Any) -> None:
        if routes is not None and replace_routes is not None:
            raise TypeError("give routes= (added to DEFAULT_ROUTES) or replace_routes= (instead of them), not both")
        self.routes: Dict[str, str] = dict(replace_routes) if replace_routes is not None else {**DEFAULT_ROUTES, **(routes or {})}
        self.default_breaker = default_breaker
        self.strict = strict
        self._breaker_for = breaker_for
        self._warned: Set[str] = set()
        self._overflow_warned_at = 0.0
        self._lock = threading.Lock()

    def provider(self, url: Any) -> Optional[str]:
        """The route's breaker, the default one, or None (passed through); raises ``UnroutedRequest`` when strict."""
        breaker: Optional[str] = self._breaker_for(self.routes, url)
        if breaker is not None or self.default_breaker is not None:
            return breaker or self.default_breaker
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        if self.strict:
            raise UnroutedRequest(host)
        self._warn_once(host)
        return None

    def _warn_once(self, host: str) -> None:
        with self._lock:
            if host in self._warned:
                return
            if len(self._warned) >= self.WARNED_HOSTS:
                if time.monotonic() - self._overflow_warned_at < 60:
                    return
                self._overflow_warned_at = time.monotonic()
            else:
                self._warned.add(host)
        log.warning("fusebox: requests to %s map to no breaker and pass through unguarded: add the host to routes= "
                    "or set default_breaker= (strict=True refuses them)", host)

    @staticmethod
    def per_model(breaker: str, request: Any, names: AbstractSet[str]) -> str:
        """``<breaker>/<model>`` when the sidecar has such a breaker for the body's model, else ``breaker``."""
        prefix = breaker + "/"
        if not any(name.startswith(prefix) for name in names):
            return breaker
        model = model_of(request)
        return prefix + model if model is not None and prefix + model in names else breaker


def build(httpx: ModuleType) -> SimpleNamespace:
    """``Transport``, ``AsyncTransport`` and ``breaker_for`` for the module ``httpx``."""
    def breaker_for(routes: Mapping[str, str], url: Any) -> Optional[str]:
        """The breaker for a request: the longest matching ``host[:port][/path-prefix]`` key."""
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        best: Optional[Tuple[int, str]] = None
        for key, breaker in routes.items():
            key_host, _, prefix = key.partition("/")
            if key_host not in (host, url.host):
                continue
            if prefix and not url.path.lstrip("/").startswith(prefix):
                continue
            score = len(key)
            if best is None or score > best[0]:
                best = (score, breaker)
        return best[1] if best else None


    def report_fields(response: Any, body: bytes, total_ms: float) -> Dict[str, Any]:
        """What a response says about the call: status, Retry-After, error text, tokens used, its duration."""
        fields: Dict[str, Any] = {"status": response.status_code, "latency_ms": total_ms}
        retry = retry_after_ms(response.headers)
        if retry is not None and response.status_code >= 400:
            fields["retry_after_ms"] = retry
        document = _json(response, body)
        if response.status_code >= 400:
            fields["error"] = _error_text(document, response)
        elif isinstance(document, dict):
            used = _tokens_used(document.get("usage"))
            if used is not None:
                fields["tokens_used"] = used
        return {key: value for key, value in fields.items() if value is not None}


    def _json(response: Any, body: bytes) -> Any:
        if "json" not in response.headers.get("content-type", "") or not body or len(body) >= _KEEP_BYTES:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None


    def _error_text(document: Any, response: Any) -> str:
        # OpenAI: {"error": {"message", "type", "code"}}; Anthropic: {"type": "error", "error": {"type", "message"}}.
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            error = document["error"]
            kind = error.get("type") or error.get("code") or ""
            return f"{kind}: {error.get('message', '')}".strip(": ")[:1000]
        return f"HTTP {response.status_code} {response.reason_phrase}"


    def _tokens_used(usage: Any) -> Optional[int]:
        if not isinstance(usage, dict):
            return None
        if isinstance(usage.get("total_tokens"), int):  # OpenAI
            return int(usage["total_tokens"])
        parts = [usage.get(k) for k in ("input_tokens", "output_tokens")]  # Anthropic
        if any(isinstance(p, int) for p in parts):
            return sum(p for p in parts if isinstance(p, int))
        return None


    class _Call:
        """One permitted request: keeps the start of its body and reports it exactly once."""

        def __init__(self, permit: Permit, response: Any, started: float) -> None:
            self.permit = permit
            self.response = response
            self.started = started
            self.body = bytearray()
            self.done = False
            self.reported = False
            self.first_byte: Optional[float] = None
            self.tail = b""

        @property
        def finished_stream(self) -> bool:
            """An event stream whose last event says it is complete (OpenAI's ``[DONE]``, Anthropic's
            ``message_stop``): the SDK stops reading there and closes, before the body's own end."""
            if "text/event-stream" not in self.response.headers.get("content-type", ""):
                return False
            return b"data: [DONE]" in self.tail or b"message_stop" in self.tail

        def chunk(self, data: bytes) -> None:
            if self.first_byte is None:
                self.first_byte = time.monotonic()
            self.tail = (self.tail + data)[-256:]
            if len(self.body) < _KEEP_BYTES:
                self.body += data[: _KEEP_BYTES - len(self.body)]

        def fields(self, error: Optional[BaseException]) -> Dict[str, Any]:
            total_ms = (time.monotonic() - self.started) * 1000
            if error is not None:
                kind = "timeout" if isinstance(error, httpx.TimeoutException) else "connection"
                fields = {"error_kind": kind, "latency_ms": total_ms, "error": f"{type(error).__name__} while reading: {error}"[:1000]}
            elif not self.done and not self.finished_stream:
                fields = {"outcome": "cancelled", "latency_ms": total_ms}
            else:
                fields = report_fields(self.response, bytes(self.body), total_ms)
            if self.first_byte is not None:
                fields["ttfb_ms"] = (self.first_byte - self.started) * 1000
            return fields


    class _ReportingStream(httpx.SyncByteStream):  # type: ignore[name-defined,misc]  # the module is chosen at run time
        def __init__(self, inner: Any, call: _Call, fusebox: Fusebox) -> None:
            self.inner = inner
            self.call = call
            self.fusebox = fusebox

        def __iter__(self) -> Iterator[bytes]:
            try:
                for data in self.inner:
                    self.call.chunk(data)
                    yield data
            except httpx.TransportError as error:
                self._report(error)
                raise
            self.call.done = True

        def close(self) -> None:
            try:
                self.inner.close()
            finally:
                self._report(None)

        def __del__(self) -> None:
            # A response dropped without being closed: its permit stops being renewed and expires.
            if not self.call.reported:
                self.fusebox._renewer.drop(self.call.permit)

        def _report(self, error: Optional[BaseException]) -> None:
            if not self.call.reported:
                self.call.reported = True
                self.fusebox._renewer.drop(self.call.permit)
                self.fusebox.report(self.call.permit, **self.call.fields(error))


    class _AsyncReportingStream(httpx.AsyncByteStream):  # type: ignore[name-defined,misc]  # the module is chosen at run time
        def __init__(self, inner: Any, call: _Call, fusebox: AsyncFusebox) -> None:
            self.inner = inner
            self.call = call
            self.fusebox = fusebox

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for data in self.inner:
                    self.call.chunk(data)
                    yield data
            except httpx.TransportError as error:
                await self._report(error)
                raise
            self.call.done = True

        async def aclose(self) -> None:
            try:
                await self.inner.aclose()
            finally:
                await self._report(None)

        def __del__(self) -> None:
            if not self.call.reported:
                self.fusebox._renewer.drop(self.call.permit)

        async def _report(self, error: Optional[BaseException]) -> None:
            if not self.call.reported:
                self.call.reported = True
                self.fusebox._renewer.drop(self.call.permit)
                await self.fusebox.report(self.call.permit, **self.call.fields(error))


    def _failure(error: BaseException, started: float) -> Dict[str, Any]:
        kind = "timeout" if isinstance(error, httpx.TimeoutException) else "connection"
        return {"error_kind": kind, "latency_ms": (time.monotonic() - started) * 1000, "error": f"{type(error).__name__}: {error}"[:1000]}


    class Transport(httpx.BaseTransport):  # type: ignore[name-defined,misc]  # the module is chosen at run time
        """Wraps ``transport`` (default ``httpx.HTTPTransport()``). ``routes`` maps
        ``host[:port][/path-prefix]`` to a breaker, added to ``DEFAULT_ROUTES``
        (``replace_routes`` instead of them); ``default_breaker`` guards every
        other host; without it such requests pass through with one warning per
        host, or are refused with ``UnroutedRequest`` when ``strict``. A
        breaker ``<name>/<model>`` on the sidecar guards the requests whose
        JSON body names that model (see ``Router``)."""

        def __init__(self, fusebox: Fusebox, routes: Optional[Mapping[str, str]] = None,
                     transport: Optional[Any] = None, *, replace_routes: Optional[Mapping[str, str]] = None,
                     default_breaker: Optional[str] = None, strict: bool = False) -> None:
            self.fusebox = fusebox
            self.router = Router(routes, replace_routes, default_breaker, strict, breaker_for)
            self.routes = self.router.routes
            self.inner = transport or httpx.HTTPTransport()

        def handle_request(self, request: Any) -> Any:
            breaker = self.router.provider(request.url)
            if breaker is None:
                return self.inner.handle_request(request)
            breaker = Router.per_model(breaker, request, self.fusebox.breaker_names())
            permit = self.fusebox.acquire(breaker)
            started = time.monotonic()
            # Renewed until the response's stream is closed: a long stream is one call.
            self.fusebox._renewer.hold(permit)
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as error:
                self.fusebox._renewer.drop(permit)
                self.fusebox.report(permit, **_failure(error, started))
                raise
            except BaseException:
                self.fusebox._renewer.drop(permit)  # unreported: it expires after permit_ttl
                raise
            call = _Call(permit, response, started)
            stream = response.stream
            assert isinstance(stream, httpx.SyncByteStream)
            return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                                  request=request, stream=_ReportingStream(stream, call, self.fusebox))

        def close(self) -> None:
            self.inner.close()


    class AsyncTransport(httpx.AsyncBaseTransport):  # type: ignore[name-defined,misc]  # the module is chosen at run time
        """``Transport`` for ``httpx.AsyncClient`` and the SDKs' async clients."""

        def __init__(self, fusebox: AsyncFusebox, routes: Optional[Mapping[str, str]] = None,
                     transport: Optional[Any] = None, *, replace_routes: Optional[Mapping[str, str]] = None,
                     default_breaker: Optional[str] = None, strict: bool = False) -> None:
            self.fusebox = fusebox
            self.router = Router(routes, replace_routes, default_breaker, strict, breaker_for)
            self.routes = self.router.routes
            self.inner = transport or httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: Any) -> Any:
            breaker = self.router.provider(request.url)
            if breaker is None:
                return await self.inner.handle_async_request(request)
            breaker = Router.per_model(breaker, request, await self.fusebox.breaker_names())
            permit = await self.fusebox.acquire(breaker)
            started = time.monotonic()
            self.fusebox._renewer.hold(permit)  # until the stream is closed
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError as error:
                self.fusebox._renewer.drop(permit)
                await self.fusebox.report(permit, **_failure(error, started))
                raise
            except BaseException:
                self.fusebox._renewer.drop(permit)  # unreported (cancelled): it expires after permit_ttl
                raise
            call = _Call(permit, response, started)
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                                  request=request, stream=_AsyncReportingStream(stream, call, self.fusebox))

        async def aclose(self) -> None:
            await self.inner.aclose()

    return SimpleNamespace(Transport=Transport, AsyncTransport=AsyncTransport, breaker_for=breaker_for)
