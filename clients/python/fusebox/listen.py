"""Transition listeners over the protocol's ``subscribe``, for code used to
pybreaker's listeners: a background thread (or an async iterator) that hands
every transition the sidecar reports to your callback."""
from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any, Callable, Dict, Optional

log = logging.getLogger("fusebox")

Event = Dict[str, Any]


class Listener:
    """Calls ``callback(event)`` for every transition (the fields of the
    sidecar's transition log line: ``breaker``, ``old_state``,
    ``new_state``, ``reason``, …) until ``stop()``. Reconnects every
    ``reconnect_interval`` seconds while the sidecar is away; a callback that
    raises is logged and does not stop the listener."""

    def __init__(self, socket_path: str, callback: Callable[[Event], None], reconnect_interval: float = 1.0) -> None:
        self.socket_path = socket_path
        self.callback = callback
        self.reconnect_interval = reconnect_interval
        self._stopped = threading.Event()
        self._subscribed = threading.Event()
        self._socket: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fusebox-listener", daemon=True)
        self._thread.start()

    def wait_subscribed(self, timeout: Optional[float] = None) -> bool:
        """Waits until the sidecar has confirmed the subscription: every
        transition after that reaches the callback. False on timeout."""
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._socket is not None:
                try:
                    self._socket.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
                except OSError:
                    pass
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except (OSError, ValueError) as error:
                if not self._stopped.is_set():
                    log.debug("fusebox: listener lost the sidecar (%s); retrying", error)
            finally:
                self._subscribed.clear()  # the connection ended, cleanly or not: no longer subscribed
            self._stopped.wait(self.reconnect_interval)

    def _listen(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(self.socket_path)
            with self._lock:
                self._socket = connection
            if self._stopped.is_set():
                return
            connection.sendall(b'{"op":"subscribe","events":["transition"]}\n')
            stream = connection.makefile("rb")
            answer = json.loads(stream.readline() or b"{}")
            if not answer.get("ok"):
                raise ValueError(f"subscribe refused: {answer}")
            self._subscribed.set()
            for line in stream:
                event = json.loads(line)
                if event.get("event") != "transition":
                    continue  # "dropped" notices: the sidecar says how many this listener missed
                try:
                    self.callback(event)
                except Exception:  # a listener's bug must not end the listening
                    log.exception("fusebox: transition listener raised")
