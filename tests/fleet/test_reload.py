"""A reload is followed at once, without re-making the PostgreSQL connection:
a breaker it adds is shared, one it turns `fleet: false` is not any more, and
a `scope: fleet` budget it adds is leased."""
from __future__ import annotations

import signal
import time

from conftest import Fleet, Subscription, psql

BEFORE = """
defaults:
  trip: { consecutive_failures: 2, window: off }
  open: { duration: 60s, jitter: 0, backoff: off }
  max_transitions_per_minute: off
breakers: { openai: {} }
"""
AFTER = BEFORE.replace("breakers: { openai: {} }",
                       "breakers: { openai: {OPENAI}, mistral: {}, limited: { rate: { requests: 60, per: 1m, scope: fleet } } }")


def reload(sidecar, body: str) -> None:
    path = sidecar.folder / "fusebox.yaml"
    text = path.read_text()
    path.write_text(text[:text.index("\ndefaults:")] + "\n" + body)
    before = sidecar.log.read_text().count('"config_reloaded"')
    sidecar.process.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while sidecar.log.read_text().count('"config_reloaded"') == before:
        assert time.time() < deadline, f"{sidecar.name} did not reload: {sidecar.log.read_text()[-1500:]}"
        time.sleep(0.05)  # poll


def test_a_reload_adding_a_breaker_or_flipping_fleet_is_followed_without_reconnecting():
    with Fleet(2, BEFORE) as fleet:
        origin, peer = fleet.sidecars
        reload(origin, AFTER.replace("{OPENAI}", "{}"))
        reload(peer, AFTER.replace("{OPENAI}", "{ fleet: false }"))
        watcher = Subscription(peer)
        # A breaker the reload added is shared: the peer follows its opening.
        for _ in range(2):
            origin.ask('{"op":"record","breaker":"mistral","status":503}')
        opened = watcher.wait_for(lambda e: e.get("breaker") == "mistral" and e.get("new_state") == "open", timeout=5)
        assert opened["reason"] == "fleet"
        # A breaker the reload made `fleet: false` on the peer is its own.
        for _ in range(2):
            origin.ask('{"op":"record","breaker":"openai","status":503}')
        time.sleep(1)  # pacing: a negative check: the peer would have followed within milliseconds
        assert origin.state("openai") == "open" and peer.state("openai") == "closed"
        # A fleet budget the reload added is leased by both.
        deadline = time.time() + 10
        members = 0
        while time.time() < deadline and members < 2:
            members = int(psql(f"SELECT count(*) FROM fleet_leases WHERE fleet = '{fleet.name}' AND breaker = 'limited'")[0][0])
            time.sleep(0.1)  # poll
        assert members == 2
        for sidecar in fleet.sidecars:
            assert sidecar.log.read_text().count('"fleet_connected"') == 1, "the connection was kept"
        watcher.close()
