"""A wrong URL is refused at start; a wrong password, a missing database and a
database of another schema version give a degraded start: decisions work
locally, the reason is in the log, and fusebox_fleet_connected is 0."""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.request

from conftest import BINARY, POSTGRES, psql

SOCKETS = os.environ.get("FUSEBOX_TEST_PGSOCKETS", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(folder: pathlib.Path, url: str, port: int) -> pathlib.Path:
    path = folder / "fusebox.yaml"
    path.write_text(f"""
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: 127.0.0.1:{port}
store: off
fleet: {{ postgres: {json.dumps(url)}, name: bad }}
breakers: {{ openai: {{}} }}
""")
    return path


def test_a_malformed_url_is_refused_by_check_and_at_start():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-bad-"))
    path = config(folder, "mysql://fusebox@localhost/fusebox", free_port())
    check = subprocess.run([BINARY, "check", "--config", str(path)], capture_output=True, text=True)
    serve = subprocess.run([BINARY, "serve", "--config", str(path)], capture_output=True, text=True, timeout=20, cwd=folder)
    print(f"\ncheck: {check.stderr.strip()}")
    assert check.returncode != 0 and "fleet.postgres" in check.stderr and "scheme must be postgresql" in check.stderr
    assert serve.returncode != 0 and "scheme must be postgresql" in serve.stderr + serve.stdout


def degraded_start(url: str, expected: str) -> None:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-bad-"))
    port = free_port()
    path = config(folder, url, port)
    log = folder / "fusebox.log"
    process = subprocess.Popen([BINARY, "serve", "--config", str(path)], cwd=folder, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        lines = []
        while time.time() < deadline:
            lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
            # The fleet link may fail before the sockets and HTTP are up: wait for all three.
            events = {line.get("event") for line in lines}
            if {"fleet_unreachable", "started", "http_listening"} <= events:
                break
            time.sleep(0.05)  # poll
        reason = next(line["reason"] for line in lines if line.get("event") == "fleet_unreachable")
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(folder / "fusebox.sock"))
            s.sendall(b'{"op":"acquire","breaker":"openai"}\n')
            answer = json.loads(s.makefile().readline())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        time.sleep(2)  # pacing: a negative check: retries go on for 2 s, and the log does not repeat them
        repeats = sum(1 for line in log.read_text().splitlines() if "fleet_" in line and "unreachable" in line)
    finally:
        process.terminate()
        process.wait(timeout=20)
    print(f"\n{expected}: {reason}")
    assert expected in reason
    assert answer["allowed"] is True, "decisions go on locally"
    assert "fusebox_fleet_connected 0" in metrics
    for reason in ("unsigned", "malformed", "signature", "stale", "replayed"):
        assert f'fusebox_fleet_messages_refused_total{{reason="{reason}"}} 0' in metrics, "every refusal reason is a series from the start"
    assert repeats == 1


def test_a_wrong_password_starts_degraded_with_the_reason():
    degraded_start(f"postgresql://secured:wrong@/fusebox?host={SOCKETS}", "refused the login for user secured")


def test_a_missing_database_starts_degraded_with_the_reason():
    degraded_start(f"postgresql://fusebox@/no_such_db?host={SOCKETS}", "database no_such_db does not exist")


def test_a_database_of_another_schema_version_starts_degraded_with_the_reason():
    psql("DROP DATABASE IF EXISTS other_schema")
    psql("CREATE DATABASE other_schema")
    other = POSTGRES.replace("/fusebox?", "/other_schema?")
    subprocess.run([os.path.join(os.environ["FUSEBOX_TEST_PGBIN"], "psql"), other, "-qc",
                    "CREATE TABLE fusebox_schema (version INTEGER NOT NULL); INSERT INTO fusebox_schema VALUES (99)"], check=True)
    degraded_start(other, "schema version 99")


def test_fleet_retention_prunes_old_history_of_its_own_fleet_only():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-retention-"))
    (folder / "fusebox.yaml").write_text(f"""
socket: ./fusebox.sock
admin_socket: ./fusebox-admin.sock
http: off
store: ./fusebox.db
fleet: {{ postgres: {json.dumps(POSTGRES)}, name: pruned, retention: 1d }}
breakers: {{ openai: {{}} }}
""")
    process = subprocess.Popen([BINARY, "serve", "--config", "fusebox.yaml"], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and psql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'history_transitions'")[0][0] != "1":
            time.sleep(0.1)  # poll
        old = int((time.time() - 2 * 86400) * 1000)
        for fleet in ("pruned", "other"):
            psql(f"INSERT INTO history_transitions VALUES ('old-{fleet}', 1, '{fleet}', {old}, 'then', 'h', 'b', 'closed', 'open', "
                 f"'consecutive_failures', 1, 5, 0, 0, 0, 0, NULL, NULL, NULL, NULL) ON CONFLICT DO NOTHING")
        process.terminate()
        process.wait(timeout=20)
        process = subprocess.Popen([BINARY, "serve", "--config", "fusebox.yaml"], cwd=folder,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline and psql("SELECT count(*) FROM history_transitions WHERE store_id = 'old-pruned'")[0][0] != "0":
            time.sleep(0.1)  # poll
        left = {row[0]: int(row[1]) for row in psql(
            "SELECT fleet, count(*) FROM history_transitions WHERE store_id LIKE 'old-%' GROUP BY fleet")}
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert left == {"other": 1}


def test_a_nan_row_in_the_fleet_history_is_skipped_with_a_warning_and_the_rest_is_analysed():
    """Anyone who can write the history tables can write NaN into a DOUBLE PRECISION column; one such
    row must not make the whole fleet's history unreadable (it did: exit 74, "altered or damaged")."""
    from conftest import Fleet
    with Fleet(1, "breakers: { openai: {} }") as fleet:  # makes sure the schema exists
        name = fleet.name
    now = int(time.time() * 1000)

    def row(local_id: int, at: int, old: str, new: str, reason: str, rate: str) -> str:
        return (f"('nan-{name}', {local_id}, '{name}', {at}, 'then', 'host-a', 'openai', '{old}', '{new}', '{reason}', "
                f"{local_id}, 5, 10, 5, {rate}, 0, 'down', 503, NULL, NULL)")
    psql("INSERT INTO history_transitions VALUES "
         + row(1, now - 60_000, "closed", "open", "consecutive_failures", "0.5") + ", "
         + row(2, now - 50_000, "open", "half_open", "open_elapsed", "'NaN'::float8") + ", "
         + row(3, now - 40_000, "half_open", "closed", "probe_succeeded", "0"))
    analyzed = subprocess.run([BINARY, "analyze", "--db", POSTGRES, "--fleet", name, "--format", "json"],
                              capture_output=True, text=True, timeout=60)
    assert analyzed.returncode == 0, analyzed.stderr
    assert "skipped 1 row(s) of history_transitions" in analyzed.stderr, analyzed.stderr
    assert len(analyzed.stderr.strip().splitlines()) == 1, analyzed.stderr
    report = json.loads(analyzed.stdout)
    assert len(report["incidents"]) == 1, "the other rows were analysed"
