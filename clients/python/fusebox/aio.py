"""The asyncio client: the same API as ``Fusebox`` with ``async with`` and
``async for``, over a pool of asyncio Unix-socket connections."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence

from .classify import Classifier, default_classifier
from .client import UNAVAILABLE_POLICIES, Permit
from .errors import BreakerOpen, ChainExhausted, ProtocolError, SidecarUnavailable

log = logging.getLogger("fusebox")


class _AsyncConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pid = os.getpid()

    async def request(self, message: Dict[str, Any], timeout: float) -> Dict[str, Any]:
        self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await asyncio.wait_for(self.writer.drain(), timeout)
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise ConnectionError("the sidecar closed the connection")
        return json.loads(line)

    def close(self) -> None:
        self.writer.close()


class AsyncFusebox:
    """``Fusebox`` for asyncio code; one instance per event loop."""

    def __init__(self, socket_path: Optional[str] = None, *, timeout: float = 2.0, on_unavailable: str = "allow",
                 pool_size: int = 8, reconnect_interval: float = 1.0, classifiers: Sequence[Classifier] = ()) -> None:
        if on_unavailable not in UNAVAILABLE_POLICIES:
            raise ValueError(f"on_unavailable must be one of {UNAVAILABLE_POLICIES}, got {on_unavailable!r}")
        self.socket_path = socket_path or os.environ.get("FUSEBOX_SOCKET", "./fusebox.sock")
        self.timeout = timeout
        self.on_unavailable = on_unavailable
        self.pool_size = pool_size
        self.reconnect_interval = reconnect_interval
        self.classifiers = list(classifiers)
        self._idle: List[_AsyncConnection] = []
        self._down_since: Optional[float] = None
        self._next_attempt = 0.0
        self.chains: Dict[str, List[str]] = {}

    async def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        connection = await self._take()
        try:
            answer = await connection.request(message, self.timeout)
        except (OSError, ValueError, asyncio.TimeoutError) as error:
            connection.close()
            self._mark_down(error)
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path}: {error}") from error
        if len(self._idle) < self.pool_size:
            self._idle.append(connection)
        else:
            connection.close()
        if self._down_since is not None:
            log.warning("fusebox: sidecar at %s reachable again", self.socket_path)
            self._down_since = None
        if not answer.get("ok"):
            problem = answer.get("error") or {}
            raise ProtocolError(problem.get("code", "unknown"), problem.get("message", ""))
        return answer

    async def acquire(self, breaker: str) -> Permit:
        try:
            answer = await self.request({"op": "acquire", "breaker": breaker})
        except SidecarUnavailable:
            return self._unavailable(breaker)
        if not answer["allowed"]:
            raise BreakerOpen(breaker, answer["state"], answer.get("retry_in_ms"))
        return Permit(answer["permit"], breaker, bool(answer.get("probe")))

    async def route(self, chain: str, exclude: Sequence[str] = ()) -> Permit:
        try:
            answer = await self.request({"op": "route", "chain": chain, "exclude": list(exclude)})
        except SidecarUnavailable:
            if self.on_unavailable == "allow" and chain in self.chains:
                left = [member for member in self.chains[chain] if member not in exclude]
                if not left:
                    raise ChainExhausted(chain, [])
                return Permit(None, left[0], degraded=True)
            return self._unavailable(chain)
        if not answer["allowed"]:
            raise ChainExhausted(chain, answer.get("skipped", []))
        return Permit(answer["permit"], answer["breaker"], bool(answer.get("probe")))

    async def report(self, permit: Permit, **fields: Any) -> Optional[str]:
        if permit.degraded or permit.id is None:
            return None
        message: Dict[str, Any] = {"op": "report", "permit": permit.id}
        message.update({k: v for k, v in fields.items() if v is not None})
        if not {"outcome", "status", "error_kind"} & message.keys():
            message["outcome"] = "success"
        try:
            return (await self.request(message)).get("state")
        except SidecarUnavailable:
            return None
        except ProtocolError as problem:
            if problem.code == "unknown_permit":
                return None
            raise

    async def status(self, breaker: Optional[str] = None) -> List[Dict[str, Any]]:
        message: Dict[str, Any] = {"op": "status"}
        if breaker is not None:
            message["breaker"] = breaker
        return (await self.request(message))["breakers"]

    def guard(self, breaker: str) -> "AsyncGuard":
        return AsyncGuard(self, breaker)

    async def chain(self, name: str) -> AsyncIterator["AsyncAttempt"]:
        """``async for attempt in fb.chain("llm"): async with attempt: …``"""
        tried: List[str] = []
        last_error: Optional[BaseException] = None
        while True:
            try:
                permit = await self.route(name, exclude=tried)
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

    def classify(self, error: BaseException) -> Dict[str, Any]:
        for classifier in self.classifiers:
            fields = classifier(error)
            if fields:
                return fields
        return default_classifier(error)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _take(self) -> _AsyncConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.pid == os.getpid() and not connection.writer.is_closing():
                return connection
        if self._down_since is not None and time.monotonic() < self._next_attempt:
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path} is unreachable (retrying)")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.socket_path), self.timeout)
            connection = _AsyncConnection(reader, writer)
            hello = await connection.request({"op": "hello", "protocol": 1, "client": "fusebox-python-asyncio/0.1.0"}, self.timeout)
        except (OSError, ValueError, asyncio.TimeoutError) as error:
            self._mark_down(error)
            raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path}: {error}") from error
        if isinstance(hello.get("chains"), dict):
            self.chains = hello["chains"]
        return connection

    def _mark_down(self, error: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("fusebox: sidecar at %s unreachable (%s); policy %r until it is back",
                        self.socket_path, error, self.on_unavailable)
        self._next_attempt = time.monotonic() + self.reconnect_interval

    def _unavailable(self, breaker: str) -> Permit:
        if self.on_unavailable == "allow":
            return Permit(None, breaker, degraded=True)
        if self.on_unavailable == "deny":
            raise BreakerOpen(breaker, "unavailable", None)
        raise SidecarUnavailable(f"fusebox sidecar at {self.socket_path} is unreachable")


class AsyncGuard:
    def __init__(self, client: AsyncFusebox, breaker: str) -> None:
        self.client = client
        self.breaker = breaker
        self.permit: Optional[Permit] = None
        self.status: Optional[int] = None
        self._started = 0.0

    async def __aenter__(self) -> "AsyncGuard":
        self.permit = await self.client.acquire(self.breaker)
        self._started = time.monotonic()
        return self

    async def __aexit__(self, kind: Any, error: Optional[BaseException], trace: Any) -> bool:
        assert self.permit is not None
        latency = (time.monotonic() - self._started) * 1000
        if error is None:
            if self.status is not None:
                await self.client.report(self.permit, status=self.status, latency_ms=latency)
            else:
                await self.client.report(self.permit, outcome="success", latency_ms=latency)
        elif isinstance(error, Exception):
            await self.client.report(self.permit, latency_ms=latency, **self.client.classify(error))
        else:  # CancelledError (a BaseException) and friends: the app gave up
            await self.client.report(self.permit, outcome="cancelled")
        return False


class AsyncAttempt(AsyncGuard):
    def __init__(self, client: AsyncFusebox, permit: Permit) -> None:
        super().__init__(client, permit.breaker)
        self.permit = permit
        self.succeeded = False
        self.error: Optional[BaseException] = None

    async def __aenter__(self) -> "AsyncAttempt":
        self._started = time.monotonic()
        return self

    async def __aexit__(self, kind: Any, error: Optional[BaseException], trace: Any) -> bool:
        await super().__aexit__(kind, error, trace)
        if error is None:
            self.succeeded = True
            return False
        if isinstance(error, Exception):
            self.error = error
            return True
        return False
