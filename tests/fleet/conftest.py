"""Real `fusebox serve` processes sharing a real PostgreSQL (started by
scripts/postgres, which sets FUSEBOX_TEST_POSTGRES and friends)."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("FUSEBOX_BINARY", str(ROOT / ".build" / "debug" / "fusebox"))
POSTGRES = os.environ.get("FUSEBOX_TEST_POSTGRES")
WORKER = ROOT / "clients" / "python" / "tests" / "budget_worker.py"
CLIENT_PATH = str(ROOT / "clients" / "python")

# The workers' script, and its `total` of their results, are the Python client tests' own.
sys.path.append(str(WORKER.parent))
from budget_worker import total  # noqa: E402,F401

if not POSTGRES:
    raise RuntimeError("the fleet tests need a PostgreSQL: run them through scripts/postgres (scripts/test does)")

# The fleet's secret (every sidecar started here inherits it), fresh per run.
SECRET = uuid.uuid4().hex + uuid.uuid4().hex
os.environ["FUSEBOX_FLEET_SECRET"] = SECRET


def seal(message: dict, secret: str = SECRET) -> str:
    """A fleet message as a sidecar holding `secret` sends it (docs/fleet.md, "Trust")."""
    text = json.dumps(message, separators=(",", ":"))
    return "fb1." + hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest() + "." + text


def database_now_ms() -> int:
    """PostgreSQL's clock, in which messages are stamped."""
    return int(psql("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")[0][0])


def psql(sql: str) -> list[list[str]]:
    out = subprocess.run([os.path.join(os.environ["FUSEBOX_TEST_PGBIN"], "psql"), POSTGRES, "-XAtF", "\t", "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def pg_ctl(action: str) -> None:
    user = os.environ.get("FUSEBOX_TEST_PGUSER", "")
    prefix = ["runuser", "-u", user, "--"] if user else []
    command = prefix + [os.path.join(os.environ["FUSEBOX_TEST_PGBIN"], "pg_ctl"), "-D", os.environ["FUSEBOX_TEST_PGDATA"],
                        "-w", "-m", "fast", action]
    if action == "start":
        command += ["-l", os.path.join(os.path.dirname(os.environ["FUSEBOX_TEST_PGDATA"]), "server.log")]
    subprocess.run(command, check=True, capture_output=True, cwd="/")


class FleetSidecar:
    def __init__(self, folder: pathlib.Path, name: str, fleet_yaml: str, body: str, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.env = {**os.environ, **(env or {})}
        self.name = name
        self.socket = str(folder / "fusebox.sock")
        self.admin_socket = str(folder / "fusebox-admin.sock")
        self.store = str(folder / "fusebox.db")
        self.log = folder / "fusebox.log"
        (folder / "fusebox.yaml").write_text(f"""
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: ./fusebox.db
instance: {name}
{fleet_yaml}
{body}
""")
        self.process = None
        #: Put before the command line: `["faketime", "-f", "+30s"]` runs this sidecar on a skewed clock.
        self.wrapper: list[str] = []

    def start(self) -> "FleetSidecar":
        # A session of its own: a wrapper (faketime) forks, and a stop signals the whole group.
        self.process = subprocess.Popen(self.wrapper + [BINARY, "serve", "--config", "fusebox.yaml"], cwd=self.folder, env=self.env,
                                        stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 20
        while not (os.path.exists(self.socket) and os.path.exists(self.admin_socket)):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"fusebox did not start: {self.log.read_text()}")
            time.sleep(0.02)  # poll
        return self

    def wait_connected(self, timeout: float = 15) -> None:
        deadline = time.time() + timeout
        while "fleet_connected" not in self.log.read_text():
            if time.time() > deadline:
                raise RuntimeError(f"{self.name} never connected to the fleet: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)  # poll

    def stop(self) -> None:
        """SIGTERM to the sidecar's process group, then waits until none of it is left (SIGKILL after 30 s)."""
        if not self.process:
            return
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.time() + 30
        while True:
            self.process.poll()
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            if time.time() > deadline:
                os.killpg(group, signal.SIGKILL)
                raise RuntimeError(f"{self.name} did not stop within 30 s of SIGTERM: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)  # poll

    def ask(self, line: str, admin: bool = False) -> dict:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.admin_socket if admin else self.socket)
            s.sendall(line.encode() + b"\n")
            return json.loads(s.makefile().readline())

    def state(self, breaker: str) -> str:
        return self.ask(json.dumps({"op": "status", "breaker": breaker}))["breakers"][0]["state"]

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
        return lines


class Fleet:
    """N sidecars of one new fleet (a fresh name per test, so tests never share state)."""

    def __init__(self, count: int, body: str, fleet_on: bool = True, extra: str = "") -> None:
        self.name = "t" + uuid.uuid4().hex[:10]
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-fleet-"))
        fleet_yaml = f"fleet:\n  postgres: {json.dumps(POSTGRES)}\n  name: {self.name}\n{extra}" if fleet_on else ""
        self.sidecars = []
        for index in range(count):
            folder = self.root / f"host{index}"
            folder.mkdir()
            self.sidecars.append(FleetSidecar(folder, f"{self.name}-host{index}", fleet_yaml, body))
        self.fleet_on = fleet_on

    def __enter__(self) -> "Fleet":
        for sidecar in self.sidecars:
            sidecar.start()
        if self.fleet_on:
            for sidecar in self.sidecars:
                sidecar.wait_connected()
        return self

    def __exit__(self, *exc) -> None:
        for sidecar in self.sidecars:
            sidecar.stop()
        if not any(exc):
            shutil.rmtree(self.root, ignore_errors=True)


class Subscription:
    """A `subscribe` connection read on its own thread, every line timestamped on arrival."""

    def __init__(self, sidecar: FleetSidecar) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sidecar.socket)
        self.sock.sendall(b'{"op":"subscribe","events":["transition"]}\n')
        self.reader = self.sock.makefile()
        assert json.loads(self.reader.readline())["ok"]
        self.events: list[dict] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.reader:
            event = json.loads(line)
            with self.lock:
                self.events.append(event)

    def wait_for(self, predicate, timeout: float = 10) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for event in self.events:
                    if predicate(event):
                        return event
            time.sleep(0.005)  # poll
        raise AssertionError(f"no matching event in {timeout} s; saw {self.events[-5:]}")

    def has(self, predicate) -> bool:
        with self.lock:
            return any(predicate(event) for event in self.events)

    def clear(self) -> None:
        with self.lock:
            self.events.clear()

    def close(self) -> None:
        self.sock.close()


class Stub:
    """A provider on loopback HTTP that counts what reaches it. `mode`: dead (503 after
    `delay` s), ok, or limited (a bucket of `per_minute`, full at start, 429 above it)."""

    def __init__(self, mode: str = "dead", delay: float = 0.1, per_minute: int = 120) -> None:
        self.mode = mode
        self.delay = delay
        self.per_minute = per_minute
        self.calls = 0
        self.too_many = 0
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.level = float(per_minute)
        self.refilled = time.monotonic()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = stub.answer()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self) -> int:
        with self.lock:
            self.calls += 1
            self.times.append(time.monotonic())
            mode = self.mode
            if mode == "limited":
                now = time.monotonic()
                rate = self.per_minute / 60.0
                self.level = min(self.per_minute, self.level + (now - self.refilled) * rate)
                self.refilled = now
                if self.level < 1 - 1e-6:
                    self.too_many += 1
                    return 429
                self.level -= 1
        if mode == "dead":
            time.sleep(self.delay)  # pacing: a dead provider answers slowly
            return 503
        return 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/call"

    def stop(self) -> None:
        self.server.shutdown()


def start_workers(sidecar: FleetSidecar, count: int, mode: str, name: str, duration: float, interval: float,
                  providers: dict) -> list:
    environment = {**os.environ, "PYTHONPATH": CLIENT_PATH}
    return [subprocess.Popen(
        [sys.executable, str(WORKER), sidecar.socket, mode, name, str(duration), str(interval), json.dumps(providers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment) for _ in range(count)]


def collect(processes: list, timeout: float) -> list[dict]:
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
