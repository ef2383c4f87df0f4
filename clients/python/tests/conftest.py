"""Starts the real `fusebox serve` binary for the tests."""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BINARY = os.environ.get("FUSEBOX_BINARY", str(ROOT / ".build" / "debug" / "fusebox"))

CONFIG = """
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: off
instance: pytest
defaults:
  trip: { consecutive_failures: 3, window: off }
  open: { duration: 500ms, jitter: 0, backoff: off }
breakers: { openai: {}, anthropic: {}, ollama: {} }
chains: { llm: [openai, anthropic, ollama] }
"""


def sidecar_config(body: str) -> str:
    """A test configuration: sockets in the folder, no HTTP, no store, then `body` (defaults, breakers, chains)."""
    return """
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: off
""" + body


class Sidecar:
    def __init__(self, folder: pathlib.Path, config: str = CONFIG) -> None:
        self.folder = folder
        self.socket = str(folder / "fusebox.sock")
        self.admin_socket = str(folder / "fusebox-admin.sock")
        (folder / "fusebox.yaml").write_text(config)
        self.process = None

    def start(self) -> "Sidecar":
        self.process = subprocess.Popen([BINARY, "serve", "--config", "fusebox.yaml"], cwd=self.folder,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        # Both sockets: the admin one is bound just after the main one.
        while not (os.path.exists(self.socket) and os.path.exists(self.admin_socket)):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"fusebox did not start: {self.process.stderr.read() if self.process.stderr else ''}")
            time.sleep(0.02)  # poll
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def admin(self, line: str) -> str:
        import socket as sockets
        with sockets.socket(sockets.AF_UNIX) as s:
            s.connect(self.admin_socket)
            s.sendall(line.encode() + b"\n")
            return s.makefile().readline()


@pytest.fixture
def sidecar():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-py-"))
    running = Sidecar(folder).start()
    yield running
    running.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def stopped_sidecar():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-py-"))
    yield Sidecar(folder)
    shutil.rmtree(folder, ignore_errors=True)
