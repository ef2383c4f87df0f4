"""A fleet runs as a role granted only what `fusebox fleet init` grants: the
tables made once by their owner (the printed SQL, piped into psql), the
sidecars with no DDL, openings and history still shared."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from conftest import BINARY, POSTGRES, FleetSidecar, Subscription, psql

PSQL = os.path.join(os.environ["FUSEBOX_TEST_PGBIN"], "psql")
BODY = """
defaults:
  trip: { consecutive_failures: 2, window: off }
  open: { duration: 30s, jitter: 0, backoff: off }
breakers: { openai: {} }
"""


def test_a_fleet_runs_as_a_role_granted_only_what_fleet_init_prints():
    psql("DROP DATABASE IF EXISTS fusebox_least")
    psql("CREATE DATABASE fusebox_least")
    psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleet_member') THEN CREATE ROLE fleet_member LOGIN; END IF; END $$")
    owner = POSTGRES.replace("/fusebox?", "/fusebox_least?", 1)
    member = owner.replace("fusebox@", "fleet_member@", 1)
    assert owner != POSTGRES and member != owner

    script = subprocess.run([BINARY, "fleet", "init", "--print-sql", "--role", "fleet_member"], check=True, capture_output=True,
                            text=True).stdout
    subprocess.run([PSQL, owner, "-Xq", "-v", "ON_ERROR_STOP=1"], input=script, check=True, capture_output=True, text=True)
    # Run again by the binary itself: the schema is current, so only the grants are (re)applied.
    ran = subprocess.run([BINARY, "fleet", "init", "--postgres", owner, "--role", "fleet_member"], capture_output=True, text=True)
    assert ran.returncode == 0 and "fleet_member granted" in ran.stdout, ran.stderr
    # The member cannot make or drop tables (PostgreSQL 15 takes CREATE on public from everyone).
    denied = subprocess.run([PSQL, member, "-Xqc", "DROP TABLE fleet_breakers"], capture_output=True, text=True)
    assert denied.returncode != 0 and "must be owner" in denied.stderr, denied.stderr

    root = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-least-"))
    fleet_yaml = f"fleet:\n  postgres: {json.dumps(member)}\n  name: least\n  ship_interval: 200ms\n"
    sidecars = []
    try:
        for index in range(2):
            (root / f"host{index}").mkdir()
            sidecars.append(FleetSidecar(root / f"host{index}", f"least-host{index}", fleet_yaml, BODY).start())
        for sidecar in sidecars:
            sidecar.wait_connected()
        peer = Subscription(sidecars[1])
        for _ in range(2):
            sidecars[0].ask('{"op":"record","breaker":"openai","status":503}')
        peer.wait_for(lambda e: e.get("new_state") == "open" and e.get("reason") == "fleet")
        peer.close()
        deadline = time.time() + 15
        query = "SELECT count(*) FROM history_transitions WHERE fleet = 'least'"
        while int(subprocess.run([PSQL, owner, "-XAtc", query], check=True, capture_output=True, text=True).stdout) < 2:
            assert time.time() < deadline, "the history never shipped as the member role"
            time.sleep(0.2)  # poll
        for sidecar in sidecars:
            log = sidecar.log.read_text()
            assert "fleet_unreachable" not in log and "fleet_disconnected" not in log and "permission denied" not in log, log[-2000:]
    finally:
        for sidecar in sidecars:
            sidecar.stop()
    shutil.rmtree(root, ignore_errors=True)
