"""Keeps the permits of calls still running alive: a call that outlives the
breaker's ``permit_ttl`` (a long stream, a reasoning model) would otherwise
expire and count as a timeout while the provider is fine. Each held permit is
renewed a third of its ttl after the last renewal, so ``permit_ttl`` bounds a
client's silence (a process that died) rather than a call's length.

Only the forms that know when a call ends hold permits (``guard``, chain
attempts, the httpx transports); a permit from a plain ``acquire`` is the
caller's to ``renew``."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Awaitable, Callable, Dict, Optional, Tuple

from .policy import Permit

log = logging.getLogger("fusebox")


def renewal_interval(permit: Permit) -> Optional[float]:
    """Seconds between renewals of ``permit``, or None if it needs none (made up, fast, or no ttl known)."""
    if permit.id is None or permit.degraded or permit.fast or not permit.ttl_ms:
        return None
    return max(permit.ttl_ms / 3000.0, 0.01)


class PermitRenewer:
    """One daemon thread per client, started at the first held permit. It
    sleeps until the earliest renewal is due; holding a permit wakes it only
    when that permit is due before anything else (the first one, usually), so
    short calls cost a dictionary insert and delete."""

    def __init__(self, renew: Callable[[Permit], bool]) -> None:
        #: Renews one permit; False when the sidecar no longer has it.
        self._renew = renew
        self._condition = threading.Condition(threading.Lock())
        self._held: Dict[str, Tuple[Permit, float, float]] = {}
        self._wake_at = float("inf")
        self._thread: Optional[threading.Thread] = None

    def hold(self, permit: Permit) -> None:
        interval = renewal_interval(permit)
        if interval is None:
            return
        due = time.monotonic() + interval
        assert permit.id is not None
        with self._condition:
            self._held[permit.id] = (permit, due, interval)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fusebox-permit-renewer", daemon=True)
                self._thread.start()
            elif due < self._wake_at:
                self._condition.notify()

    def drop(self, permit: Permit) -> None:
        if permit.id is not None and self._held:
            with self._condition:
                self._held.pop(permit.id, None)

    def _run(self) -> None:
        while True:
            with self._condition:
                now = time.monotonic()
                due = [(key, permit) for key, (permit, at, _) in self._held.items() if at <= now]
                for key, _ in due:
                    permit, _, interval = self._held[key]
                    self._held[key] = (permit, now + interval, interval)
                if not due:
                    self._wake_at = min((at for _, at, _ in self._held.values()), default=float("inf"))
                    self._condition.wait(None if self._wake_at == float("inf") else self._wake_at - now)
                    continue
            for key, permit in due:
                if not self._renew(permit):
                    with self._condition:
                        self._held.pop(key, None)


class AsyncPermitRenewer:
    """The asyncio twin: a timer on the running loop per held permit."""

    def __init__(self, renew: Callable[[Permit], Awaitable[bool]]) -> None:
        self._renew = renew
        self._timers: Dict[str, asyncio.TimerHandle] = {}
        self._tasks: "set[asyncio.Task[None]]" = set()

    def hold(self, permit: Permit) -> None:
        interval = renewal_interval(permit)
        if interval is None:
            return
        self._schedule(permit, interval)

    def drop(self, permit: Permit) -> None:
        if permit.id is not None:
            timer = self._timers.pop(permit.id, None)
            if timer is not None:
                timer.cancel()

    def _schedule(self, permit: Permit, interval: float) -> None:
        assert permit.id is not None
        loop = asyncio.get_running_loop()
        self._timers[permit.id] = loop.call_later(interval, self._due, permit, interval)

    def _due(self, permit: Permit, interval: float) -> None:
        task = asyncio.get_running_loop().create_task(self._renew_and_reschedule(permit, interval))
        self._tasks.add(task)  # a reference, so the task is not collected mid-flight
        task.add_done_callback(self._tasks.discard)

    async def _renew_and_reschedule(self, permit: Permit, interval: float) -> None:
        assert permit.id is not None
        if permit.id not in self._timers:
            return  # dropped meanwhile
        if await self._renew(permit) and permit.id in self._timers:
            self._schedule(permit, interval)
        else:
            self._timers.pop(permit.id, None)
