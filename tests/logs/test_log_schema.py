"""docs/logs.md against the code: every event the source logs is documented
with every field it writes (read from the Swift source), and a real sidecar,
made to log every event it can without PostgreSQL, writes lines whose fields
are exactly the documented ones."""
from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("FUSEBOX_BINARY", str(ROOT / ".build" / "debug" / "fusebox"))
COMMON = {"event", "timestamp", "level", "message", "service.name", "instance"}
LEVELS = {"trace": "trace", "debug": "debug", "info": "info", "notice": "info", "warning": "warn", "error": "error", "critical": "fatal"}


def documented() -> dict[str, tuple[set[str], set[str], set[str]]]:
    """event -> (levels, fields on every line, optional fields), from docs/logs.md's events table."""
    events = {}
    text = (ROOT / "docs" / "logs.md").read_text()
    for line in text[text.index("## Events"):].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        levels = set(re.findall(r"\b(trace|debug|info|warn|error|fatal)\b", cells[1]))
        required, optional = set(), set()
        for part in cells[3].split(", "):
            name = re.match(r"`([a-z_.]+)`", part.strip()).group(1)
            (optional if "(optional" in part else required).add(name)
        events[cells[0].strip("`")] = (levels, required, optional)
    return events


def logged_in_source() -> dict[str, list[tuple[str, set[str], str]]]:
    """event -> [(level, literal metadata keys, where)] for every `logger.<level>("event", …)` in Sources."""
    found: dict[str, list] = {}
    call = re.compile(r'logger\.(trace|debug|info|notice|warning|error|critical)\("([a-z_]+)"')
    for path in sorted((ROOT / "Sources").rglob("*.swift")):
        text = path.read_text()
        for match in call.finditer(text):
            i, depth = match.end(), 1
            while depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            keys = set(re.findall(r'"([a-z_.]+)":\s', text[match.end():i]))
            where = f"{path.relative_to(ROOT)}:{text[:match.start()].count(chr(10)) + 1}"
            found.setdefault(match.group(2), []).append((LEVELS[match.group(1)], keys, where))
    return found


def test_every_event_in_the_source_is_documented_with_its_level_and_fields() -> None:
    docs, source = documented(), logged_in_source()
    # The transition is logged with a computed level (TransitionLog), not a literal call.
    assert set(source) | {"transition"} == set(docs), "documented but not logged, or logged but not documented"
    for event, calls in source.items():
        levels, required, optional = docs[event]
        for level, keys, where in calls:
            assert level in levels, f"{where}: {event} is logged at {level}, documented as {levels}"
            undocumented = keys - required - optional - COMMON
            assert not undocumented, f"{where}: {event} writes {undocumented}, not in docs/logs.md"


class Sidecar:
    def __init__(self, directory: str, config: str, env: dict | None = None) -> None:
        self.socket = os.path.join(directory, "fusebox.sock")
        self.admin = os.path.join(directory, "admin.sock")
        self.log = os.path.join(directory, "fusebox.log")
        self.process = subprocess.Popen(
            [BINARY, "serve", "--config", config, "--socket", self.socket, "--admin-socket", self.admin],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT, env=env)

    def wait_for(self, what, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            assert self.process.poll() is None or what is not None, "the sidecar exited"
            time.sleep(0.05)  # poll: lines are written as the sidecar works
        raise AssertionError(f"timed out; the log: {open(self.log).read()[-3000:]}")

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in open(self.log) if line.startswith("{")]

    def logged(self, event: str):
        return lambda: [line for line in self.lines() if line["event"] == event]

    def ask(self, message: dict, admin: bool = False) -> dict:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(self.admin if admin else self.socket)
            client.sendall(json.dumps(message).encode() + b"\n")
            return json.loads(client.makefile().readline())


CONFIG = """
store: {store}
http: 127.0.0.1:0
otlp: {{ endpoint: "http://127.0.0.1:1", interval: 1s, timeout: 200ms }}
defaults:
  trip: {{ consecutive_failures: 1, window: off }}
  open: {{ duration: 100ms, jitter: 0, backoff: off }}
  max_transitions_per_minute: 3
breakers: {{ openai: {{}} {extra} }}
"""


def test_a_real_sidecar_writes_exactly_the_documented_fields() -> None:
    docs = documented()
    work = tempfile.mkdtemp()
    shared = os.path.join(work, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)  # sticky and world-writable, as /tmp: socket_directory_shared
    config = os.path.join(work, "fusebox.yaml")
    store = os.path.join(work, "fusebox.db")
    with open(config, "w") as f:
        f.write(CONFIG.format(store=store, extra=""))
    sidecar = Sidecar(shared, config)
    sidecar.wait_for(sidecar.logged("started"))
    sidecar.wait_for(lambda: os.path.exists(sidecar.socket))
    # Three transitions (open, half-open, open again) reach the cap of 3 a minute: transitions_rate_limited.
    assert sidecar.ask({"op": "record", "breaker": "openai", "status": 503})["ok"]
    sidecar.wait_for(lambda: sidecar.ask({"op": "acquire", "breaker": "openai"}).get("allowed"))
    assert sidecar.ask({"op": "record", "breaker": "openai", "status": 503})["ok"]
    sidecar.wait_for(sidecar.logged("transitions_rate_limited"))
    assert sidecar.ask({"op": "reset", "breaker": "openai"}, admin=True)["ok"]
    assert sidecar.ask({"op": "force", "breaker": "openai", "state": "open", "reason": "test"}, admin=True)["ok"]
    # A reload that applies, then one that is refused.
    with open(config, "w") as f:
        f.write(CONFIG.format(store=store, extra=", anthropic: {}"))
    sidecar.process.send_signal(signal.SIGHUP)
    sidecar.wait_for(sidecar.logged("config_reloaded"))
    with open(config, "w") as f:
        f.write("breakers: [not, a, mapping]\n")
    sidecar.process.send_signal(signal.SIGHUP)
    sidecar.wait_for(sidecar.logged("config_reload_failed"))
    sidecar.wait_for(sidecar.logged("otlp_export_failed"))
    sidecar.process.send_signal(signal.SIGTERM)
    assert sidecar.process.wait(timeout=30) == 0
    # A restart takes up the forced state: state_restored.
    with open(config, "w") as f:
        f.write(CONFIG.format(store=store, extra=""))
    again = Sidecar(shared, config)
    again.wait_for(again.logged("state_restored"))
    again.process.send_signal(signal.SIGTERM)
    again.process.wait(timeout=30)
    # A peer outside allowed_uids: connection_refused.
    refusing = os.path.join(work, "refusing.yaml")
    with open(refusing, "w") as f:
        f.write(f"store: off\nhttp: off\nallowed_uids: [{os.getuid() + 1}]\nbreakers: {{ openai: {{}} }}\n")
    private = os.path.join(work, "private")
    os.mkdir(private, 0o700)
    guarded = Sidecar(private, refusing)
    guarded.wait_for(lambda: os.path.exists(guarded.socket))
    with socket.socket(socket.AF_UNIX) as peer:
        peer.connect(guarded.socket)
        peer.makefile().readline()
    guarded.wait_for(guarded.logged("connection_refused"))
    guarded.process.send_signal(signal.SIGTERM)
    guarded.process.wait(timeout=30)

    seen = set()
    for line in sidecar.lines() + again.lines() + guarded.lines():
        event = line["event"]
        assert event in docs, f"{event} is not in docs/logs.md: {line}"
        levels, required, optional = docs[event]
        fields = set(line) - COMMON
        assert required <= fields, f"{event} lacks {required - fields}: {line}"
        assert fields <= required | optional, f"{event} writes {fields - required - optional}, not in docs/logs.md: {line}"
        assert line["level"] in levels, f"{event} at {line['level']}, documented as {levels}"
        assert COMMON <= set(line) and line["service.name"] == "fusebox", line
        seen.add(event)
    expected = {"started", "http_listening", "fast_path_state_file", "socket_directory_shared", "transition",
                "transitions_rate_limited", "operator_force", "operator_reset", "config_reloaded", "config_reload_failed",
                "otlp_export_failed", "stopped", "state_restored", "connection_refused"}
    assert expected <= seen, f"not triggered: {expected - seen}"


def test_log_level_leaves_out_the_less_severe_lines() -> None:
    work = tempfile.mkdtemp()
    config = os.path.join(work, "fusebox.yaml")
    with open(config, "w") as f:
        f.write("store: off\nhttp: off\nlog_level: warn\ndefaults: { trip: { consecutive_failures: 1, window: off } }\n"
                "breakers: { openai: {} }\n")
    sidecar = Sidecar(work, config)
    sidecar.wait_for(lambda: os.path.exists(sidecar.socket))
    assert sidecar.ask({"op": "record", "breaker": "openai", "status": 503})["ok"]
    opened = sidecar.wait_for(sidecar.logged("transition"))
    assert opened[0]["level"] == "warn"
    sidecar.process.send_signal(signal.SIGTERM)
    assert sidecar.process.wait(timeout=30) == 0
    levels = {line["level"] for line in sidecar.lines()}
    assert levels == {"warn"}, f"only warn and above: {levels} (no started, stopped or fast_path_state_file at info)"
