"""The fleet's PostgreSQL schema moves forward: a database of version 1 is
read by `analyze` as it is, and migrated to version 2 by the first sidecar
that connects, keeping its history; transitions then ship with their active
probe's columns and fleet origin."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from conftest import BINARY, POSTGRES, FleetSidecar, Stub, psql

V1_ROW = ("('legacy-store', 1, 'legacy', {at}, 'then', 'old-host', 'openai', 'closed', 'open', 'consecutive_failures', "
          "1, 5, 10, 5, 0.5, 0, 'down', 503, NULL, NULL)")


def test_a_version_1_database_is_read_as_it_is_then_migrated_and_ships_probe_columns():
    psql("DROP DATABASE IF EXISTS fusebox_v1")
    psql("CREATE DATABASE fusebox_v1")
    url = POSTGRES.replace("/fusebox?", "/fusebox_v1?", 1)
    assert url != POSTGRES

    def in_v1(sql: str) -> list[list[str]]:
        out = subprocess.run([os.path.join(os.environ["FUSEBOX_TEST_PGBIN"], "psql"), url, "-XAtF", "\t", "-c", sql],
                             check=True, capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    root = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-schema-"))
    stub = Stub("dead")
    body = f"""
defaults:
  trip: {{ consecutive_failures: 2, window: off }}
  open: {{ duration: 1s, jitter: 0, backoff: off }}
breakers:
  openai: {{ probe: {{ http: {{ url: "{stub.url}/v1/models", timeout: 500ms }} }} }}
"""
    fleet_yaml = f"fleet:\n  postgres: {json.dumps(url)}\n  name: migrated\n  ship_interval: 200ms\n"
    try:
        # Version 1 as that release made it: a new database is version 1's tables, then each migration;
        # taking migration 2 back leaves exactly what version 1 created.
        (root / "first").mkdir()
        first = FleetSidecar(root / "first", "first", fleet_yaml, body)
        first.start()
        first.wait_connected()
        first.stop()
        in_v1("ALTER TABLE history_transitions DROP COLUMN probe_outcome, DROP COLUMN probe_latency_ms, "
              "DROP COLUMN probe_status, DROP COLUMN origin; DELETE FROM fusebox_schema WHERE version = 2")
        in_v1("INSERT INTO history_transitions VALUES " + V1_ROW.format(at=int(time.time() * 1000) - 60_000))

        read = subprocess.run([BINARY, "analyze", "--db", url, "--fleet", "legacy", "--format", "json"],
                              capture_output=True, text=True, timeout=60)
        assert read.returncode == 0, read.stderr
        assert len(json.loads(read.stdout)["incidents"]) == 1, "a version 1 database is read as it is"

        (root / "second").mkdir()
        sidecar = FleetSidecar(root / "second", "second", fleet_yaml, body)
        sidecar.start()
        sidecar.wait_connected()
        assert in_v1("SELECT max(version) FROM fusebox_schema") == [["2"]]
        assert in_v1("SELECT count(*) FROM history_transitions WHERE fleet = 'legacy'") == [["1"]], "history kept"
        for _ in range(2):
            sidecar.ask('{"op":"record","breaker":"openai","status":503}')
        deadline = time.time() + 20
        shipped: list[list[str]] = []
        while time.time() < deadline and not shipped:
            shipped = in_v1("SELECT probe_outcome, probe_status FROM history_transitions "
                            "WHERE fleet = 'migrated' AND probe_outcome IS NOT NULL LIMIT 1")
            time.sleep(0.2)  # poll
        # The stub answers a probe's GET with an error status: a failed probe, its status recorded.
        assert shipped and shipped[0][0] == "failure" and int(shipped[0][1]) >= 400, f"the probe's columns shipped: {shipped}"
        sidecar.stop()
        shown = subprocess.run([BINARY, "analyze", "--db", url, "--fleet", "migrated", "--format", "json"],
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert '"probe_outcome":"failure"' in shown.stdout.replace(" ", ""), "analyze shows the probe"
    finally:
        stub.stop()
        shutil.rmtree(root, ignore_errors=True)
