"""The fast path's records, on one connection of their own, in the order the
calls ended. Successes nobody waits for are batched: sent within
``FLUSH_AFTER`` of the first one waiting, at once when ``MAX_WAITING``
wait, and at exit and before a fork; a success cannot trip anything, so the
breaker loses nothing by hearing of it a millisecond late. A record that may
be a failure goes out at once behind the waiting successes, on the same
connection, and is waited for, so the breaker has counted it (in order)
before the caller's next call looks. A SIGKILL loses at most the successes
still waiting (``MAX_WAITING``, or one millisecond's worth)."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List, Optional


class RecordLane:
    FLUSH_AFTER = 0.001
    MAX_WAITING = 64

    def __init__(self, connect: Callable[[], Any]) -> None:
        #: Opens a connection that has said hello (the client's own `_Connection`).
        self._connect = connect
        self._connection: Optional[Any] = None
        self._waiting: List[bytes] = []
        #: Guards `_waiting`; `_sending` guards the connection and keeps the lines in order.
        self._condition = threading.Condition(threading.Lock())
        self._sending = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        #: Each breaker's name as a JSON string, made once (b"" past 10,000 names: those take the general way).
        self._names: Dict[str, bytes] = {}

    def add(self, message: Dict[str, Any]) -> None:
        """Queues a record that is not answered (``"reply": false``)."""
        self.add_line(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def add_success(self, breaker: str, generation: int, latency_ms: float) -> None:
        """A plain success, the common case, formatted without building a dictionary or calling json."""
        name = self._names.get(breaker)
        if name is None:
            encoded = json.dumps(breaker).encode()
            self._names[breaker] = name = encoded if len(self._names) < 10_000 else b""
        if not name:
            self.add({"op": "record", "breaker": breaker, "generation": generation, "outcome": "success",
                      "latency_ms": latency_ms, "reply": False})
            return
        self.add_line(b'{"op":"record","breaker":%s,"generation":%d,"outcome":"success","latency_ms":%.3f,"reply":false}\n'
                      % (name, generation, latency_ms))

    def add_line(self, line: bytes) -> None:
        with self._condition:
            self._waiting.append(line)
            count = len(self._waiting)
            if count == 1:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="fusebox-records", daemon=True)
                    self._thread.start()
                else:
                    self._condition.notify()
        if count >= self.MAX_WAITING:
            self.flush()

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        """Sends the waiting successes and then `message`, and returns its answer.
        Raises OSError or ValueError as a connection does (the caller decides)."""
        with self._sending:
            lines = b"".join(self._take())
            for last_try in (False, True):
                reused = self._connection is not None
                connection = self._open()
                try:
                    if lines:
                        connection.send_lines(lines)
                    answer: Dict[str, Any] = connection.request(message)
                    return answer
                except (OSError, ValueError) as error:
                    self._drop()
                    # The sidecar closes a connection idle for idle_timeout: what was sent on it went nowhere, so once more on a new one.
                    if last_try or not reused or not isinstance(error, ConnectionError):
                        raise
            raise AssertionError("unreachable")

    def flush(self) -> None:
        """Sends what waits; lost if the sidecar is gone (successes, not worth failing the app for)."""
        with self._sending:
            lines = b"".join(self._take())
            if not lines:
                return
            try:
                self._open().send_lines(lines)
            except (OSError, ValueError):
                self._drop()

    def forget(self) -> None:
        """In a forked child: the parent's connection and waiting lines are the parent's."""
        self._connection = None
        self._waiting = []
        self._condition = threading.Condition(threading.Lock())
        self._sending = threading.Lock()
        self._thread = None

    def _take(self) -> List[bytes]:
        with self._condition:
            lines, self._waiting = self._waiting, []
        return lines

    def _open(self) -> Any:
        if self._connection is not None and self._connection.closed_by_peer():
            self._drop()  # closed by the sidecar while idle: writing to it would lose the lines
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._waiting:
                    self._condition.wait()
            time.sleep(self.FLUSH_AFTER)
            try:
                self.flush()
            except Exception:  # the lane's thread never dies: the next batch tries again
                pass
