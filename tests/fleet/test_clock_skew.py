"""Clock skew: one sidecar's clock 30 s ahead, one's 30 s behind (Debian's
faketime). Openings and leases are told as durations and expire in
PostgreSQL's clock, so every host probes on time: one probe per open period,
none early, and every sidecar closes within a second of the probe's success.

Measured: the build before this change also passes this scenario (the probe
went to the unskewed origin both times), so it shows the fleet working under
skew rather than the old failure; see docs/fleet.md, "Clock skew"."""
from __future__ import annotations

import json
import random
import socket
import time

from conftest import Fleet, psql

BODY = """
defaults:
  trip: { consecutive_failures: 2, window: off }
  open: { duration: 2s, jitter: 0, backoff: off }
  half_open: { probes: 1, successes_to_close: 1, max_wait: 60s }
  max_transitions_per_minute: off
breakers: { flaky: {} }
"""


class Connection:
    """One connection to a sidecar: a permit is reported on the connection that acquired it."""

    def __init__(self, sidecar) -> None:
        self.name = sidecar.name
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sidecar.socket)
        self.reader = self.sock.makefile()

    def ask(self, message: dict) -> dict:
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(self.reader.readline())


def test_hosts_30_s_ahead_and_behind_probe_once_per_open_period_and_close_together():
    fleet = Fleet(3, BODY)
    fleet.sidecars[1].wrapper = ["faketime", "-f", "+30s"]
    fleet.sidecars[2].wrapper = ["faketime", "-f", "-30s"]
    with fleet:
        origin = fleet.sidecars[0]
        for _ in range(2):
            origin.ask('{"op":"record","breaker":"flaky","status":503}')
        tripped = time.monotonic()
        deadline = time.time() + 5
        while any(s.state("flaky") != "open" for s in fleet.sidecars):
            assert time.time() < deadline, [s.state("flaky") for s in fleet.sidecars]
            time.sleep(0.02)
        # Every sidecar asks as traffic would; a probe let through fails once, then succeeds.
        probes: list[tuple[float, str]] = []
        closed_at = None
        end = time.monotonic() + 12
        connections = [Connection(s) for s in fleet.sidecars]
        while time.monotonic() < end and closed_at is None:
            for connection in random.sample(connections, len(connections)):
                answer = connection.ask({"op": "acquire", "breaker": "flaky"})
                if answer.get("allowed"):
                    probes.append((time.monotonic() - tripped, connection.name))
                    status = 503 if len(probes) == 1 else 200
                    assert connection.ask({"op": "report", "permit": answer["permit"], "status": status})["ok"]
                    if status == 200:
                        closed_at = time.monotonic()
                        break
            time.sleep(0.02)
        assert closed_at is not None, f"no probe succeeded: {probes}"
        while any(s.state("flaky") != "closed" for s in fleet.sidecars):
            assert time.monotonic() - closed_at < 1.0, f"not all closed a second after the probe: {[s.state('flaky') for s in fleet.sidecars]}"
            time.sleep(0.02)
        story = "\n".join(f"{s.name}: " + json.dumps([e for e in s.log_lines() if "new_state" in e])[:1500] for s in fleet.sidecars)
        rows = psql(f"SELECT * FROM fleet_probes WHERE fleet = '{fleet.name}'")
    print(f"\nprobes (s after the trip, who): {[(round(t, 2), who.rsplit('-', 1)[-1]) for t, who in probes]}")
    assert len(probes) == 2, f"one probe per open period: {probes}\n{story}\n{rows}"
    assert probes[0][0] >= 2.0 - 0.15, f"the first probe came before the open period ended: {probes}\n{story}"
    assert probes[1][0] - probes[0][0] >= 2.0 - 0.15, f"the second came before the reopened period ended: {probes}\n{story}"

