"""The asyncio client: the same API as ``Fusebox`` with ``async with`` and
``async for``, over a pool of asyncio Unix-socket connections."""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, FrozenSet, List, Optional, Sequence, TypeVar

from .classify import Classifier
from .errors import BreakerOpen, ChainExhausted, ProtocolError, SidecarUnavailable
from ._renewer import AsyncPermitRenewer
from .policy import ClientPolicy, Permit

log = logging.getLogger("fusebox")
T = TypeVar("T")


class _AsyncConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pid = os.getpid()
        self.reused = False  # taken from the pool: the sidecar may have closed it meanwhile

    async def request(self, message: Dict[str, Any], timeout: float) -> Dict[str, Any]:
        self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await asyncio.wait_for(self.writer.drain(), timeout)
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise ConnectionError("the sidecar closed the connection")
        answer: Dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        self.writer.close()


class AsyncFusebox(ClientPolicy):
    """``Fusebox`` for asyncio code; one instance per event loop."""

    def __init__(self, socket_path: Optional[str] = None, *, timeout: float = 2.0, on_unavailable: str = "allow",
                 pool_size: int = 8, reconnect_interval: float = 1.0, classifiers: Sequence[Classifier] = (),
                 chains: Optional[Dict[str, List[str]]] = None, fast_path: bool = True) -> None:
        super().__init__(socket_path, timeout, on_unavailable, pool_size, reconnect_interval, classifiers, chains,
                         fast_path)
        self._idle: List[_AsyncConnection] = []
        self._renewer = AsyncPermitRenewer(self._renew_held)

    async def __aenter__(self) -> "AsyncFusebox":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        connection = await self._take()
        try:
            answer = await connection.request(message, self.timeout)
        except (OSError, ValueError, asyncio.TimeoutError) as error:
            connection.close()
            if connection.reused and isinstance(error, ConnectionError):
                # Closed by the sidecar while idle (idle_timeout): once more, on another connection.
                return await self.request(message)
            if self._is_timeout(error):
                self._count("timeouts")  # late, not gone: the next call asks again
            else:
                self._count("unreachable")
                self._note_down(error)
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path}: {error}") from error
        if len(self._idle) < self.pool_size:
            self._idle.append(connection)
        else:
            connection.close()
        self._note_up()
        if not answer.get("ok"):
            problem = answer.get("error") or {}
            raise ProtocolError(problem.get("code", "unknown"), problem.get("message", ""))
        return answer

    async def acquire(self, breaker: str, cost: Optional[int] = None) -> Permit:
        fast = self._fast_permit(breaker)
        if fast is None and await self._confirm_state_file():
            fast = self._fast_permit(breaker)
        if fast is not None:
            return fast
        try:
            answer = await self.request(self._acquire_message(breaker, cost))
        except SidecarUnavailable:
            return self._unavailable(breaker)
        if not answer["allowed"]:
            raise BreakerOpen(breaker, answer["state"], answer.get("retry_in_ms"), reason=answer.get("reason"))
        return Permit(answer["permit"], breaker, bool(answer.get("probe")), ttl_ms=answer.get("ttl_ms"))

    async def route(self, chain: str, exclude: Sequence[str] = (), cost: Optional[int] = None,
                        requires: Sequence[str] = ()) -> Permit:
        fast = self._fast_route(chain, exclude, requires)  # a member that admits locally has no budget: cost is moot
        if fast is None and await self._confirm_state_file():
            fast = self._fast_route(chain, exclude, requires)
        if fast is not None:
            return fast
        try:
            answer = await self.request(self._route_message(chain, exclude, cost, requires))
        except SidecarUnavailable:
            return self._unavailable_route(chain, exclude)
        if not answer["allowed"]:
            raise ChainExhausted(chain, answer.get("skipped", []))
        return Permit.routed(answer)

    async def renew(self, permit: Permit) -> bool:
        """As ``Fusebox.renew``: keeps a running call's permit alive; False once the sidecar no longer has it."""
        if permit.id is None or permit.degraded or permit.fast:
            return True
        try:
            await self.request({"op": "renew", "permit": permit.id})
        except ProtocolError as problem:
            if problem.code == "unknown_permit":
                return False
            raise
        return True

    async def breaker_names(self) -> FrozenSet[str]:
        """As ``Fusebox.breaker_names``."""
        names = self._fresh_breaker_names()
        if names is None:
            try:
                self._learn(await self.request(self._confirming_hello()))
            except (SidecarUnavailable, ProtocolError):
                return frozenset()
            names = self._fresh_breaker_names()
        return names or frozenset()

    async def _renew_held(self, permit: Permit) -> bool:
        try:
            return await self.renew(permit)
        except (SidecarUnavailable, ProtocolError) as problem:
            log.debug("fusebox: renewing %r: %s", permit, problem)
            return True

    async def _confirm_state_file(self) -> bool:
        """Asks hello which state file the sidecar made, when the file names one not yet heard of; True if asked."""
        if not self._unconfirmed_state_file():
            return False
        try:
            self._learn(await self.request(self._confirming_hello()))
        except (SidecarUnavailable, ProtocolError):
            pass
        return True

    async def report(self, permit: Permit, *, outcome: Optional[str] = None, status: Optional[int] = None,
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
            await self._send(message)
            return None
        try:
            return (await self.request(message)).get("state")
        except SidecarUnavailable:
            return None
        except ProtocolError as problem:
            if problem.code in ("unknown_permit", "unknown_breaker"):  # as Fusebox.report
                return None
            raise

    async def _send(self, message: Dict[str, Any]) -> None:
        """Sends a request that is not answered (``"reply": false``); lost if the sidecar is gone."""
        try:
            connection = await self._take()
        except SidecarUnavailable:
            return
        try:
            connection.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            await asyncio.wait_for(connection.writer.drain(), self.timeout)  # at once unless the buffer is full
        except (OSError, asyncio.TimeoutError):
            connection.close()
            return
        if len(self._idle) < self.pool_size:
            self._idle.append(connection)
        else:
            connection.close()

    async def status(self, breaker: Optional[str] = None) -> List[Dict[str, Any]]:
        message: Dict[str, Any] = {"op": "status"}
        if breaker is not None:
            message["breaker"] = breaker
        breakers: List[Dict[str, Any]] = (await self.request(message))["breakers"]
        return breakers

    async def transitions(self, subscribed: Optional[asyncio.Event] = None) -> AsyncIterator[Dict[str, Any]]:
        """``async for event in fb.transitions(): …``: every transition the sidecar reports, on a connection of its own.
        ``subscribed`` is set once the sidecar has confirmed the subscription (nothing after it is missed)."""
        reader, writer = await asyncio.open_unix_connection(self.socket_path)
        try:
            writer.write(b'{"op":"subscribe","events":["transition"]}\n')
            answer = json.loads(await reader.readline() or b"{}")
            if not answer.get("ok"):
                raise ProtocolError((answer.get("error") or {}).get("code", "unknown"), "subscribe refused")
            if subscribed is not None:
                subscribed.set()
            while line := await reader.readline():
                event: Dict[str, Any] = json.loads(line)
                if event.get("event") == "transition":
                    yield event
        finally:
            writer.close()

    def guard(self, breaker: str, cost: Optional[int] = None) -> "AsyncGuard":
        """``async with fb.guard("openai") as call: …``, as ``Fusebox.guard``."""
        return AsyncGuard(self, breaker, cost)

    def protect(self, breaker: str, cost: Optional[int] = None) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
        """The decorator form of ``guard``, for coroutine functions."""
        def decorate(function: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
            @functools.wraps(function)
            async def wrapper(*args: Any, **kwargs: Any) -> T:
                async with self.guard(breaker, cost):
                    return await function(*args, **kwargs)
            return wrapper
        return decorate

    async def chain(self, name: str, cost: Optional[int] = None,
                    requires: Sequence[str] = ()) -> AsyncIterator["AsyncAttempt"]:
        """``async for attempt in fb.chain("llm"): async with attempt: …``"""
        tried: List[str] = []
        last_error: Optional[BaseException] = None
        while True:
            try:
                permit = await self.route(name, exclude=tried, cost=cost, requires=requires)
            except ChainExhausted:
                if last_error is not None:
                    raise last_error
                raise
            attempt = AsyncAttempt(self, permit)
            yield attempt
            if attempt.succeeded or attempt.error is None:
                return
            tried.append(permit.breaker)
            last_error = attempt.error

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _take(self) -> _AsyncConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.pid == os.getpid() and not connection.writer.is_closing():
                connection.reused = True
                return connection
        if self._retrying():
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path} is unreachable (retrying)")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.socket_path), self.timeout)
            connection = _AsyncConnection(reader, writer)
            greeting = self._hello_message()
            greeting["client"] = greeting["client"].replace("fusebox-python/", "fusebox-python-asyncio/")
            hello = await connection.request(greeting, self.timeout)
        except (OSError, ValueError, asyncio.TimeoutError) as error:
            self._count("timeouts" if self._is_timeout(error) else "unreachable")
            if not self._is_timeout(error):
                self._note_down(error)
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path}: {error}") from error
        self._hello_sent(greeting)
        self._learn(hello)
        return connection


class AsyncGuard:
    def __init__(self, client: AsyncFusebox, breaker: str, cost: Optional[int] = None) -> None:
        self.client = client
        self.breaker = breaker
        self.cost = cost
        self.permit: Optional[Permit] = None
        self.status: Optional[int] = None
        #: Set by the block: the tokens the provider counted, to settle ``cost``.
        self.tokens_used: Optional[int] = None
        self._started = 0.0

    async def __aenter__(self) -> "AsyncGuard":
        self.permit = await self.client.acquire(self.breaker, self.cost)
        self.client._renewer.hold(self.permit)
        self._started = time.monotonic()
        return self

    async def __aexit__(self, kind: Any, error: Optional[BaseException], trace: Any) -> None:
        assert self.permit is not None
        self.client._renewer.drop(self.permit)
        latency = (time.monotonic() - self._started) * 1000
        if error is None:
            if self.status is not None:
                await self.client.report(self.permit, status=self.status, latency_ms=latency, tokens_used=self.tokens_used)
            else:
                await self.client.report(self.permit, outcome="success", latency_ms=latency, tokens_used=self.tokens_used)
        elif isinstance(error, Exception):
            await self.client.report(self.permit, latency_ms=latency, tokens_used=self.tokens_used, **self.client.classify(error))
        else:  # CancelledError (a BaseException) and friends: the app gave up
            await self.client.report(self.permit, outcome="cancelled")


class AsyncAttempt(AsyncGuard):
    def __init__(self, client: AsyncFusebox, permit: Permit) -> None:
        super().__init__(client, permit.breaker)
        self.permit = permit
        self.succeeded = False
        self.error: Optional[BaseException] = None

    async def __aenter__(self) -> "AsyncAttempt":
        assert self.permit is not None
        self.client._renewer.hold(self.permit)
        self._started = time.monotonic()
        return self

    # An attempt swallows its failure (returns True) so the chain goes on: unlike a guard.
    async def __aexit__(self, kind: Any, error: Optional[BaseException], trace: Any) -> bool:  # type: ignore[override]
        await super().__aexit__(kind, error, trace)
        if error is None:
            self.succeeded = True
            return False
        if isinstance(error, Exception):
            self.error = error
            return True
        return False
