"""Hostile messages on the fleet's channel. PostgreSQL checks no privilege on
NOTIFY or LISTEN: any role that can connect can send `fusebox_fleet`
anything, and read what peers send. A message moves a breaker only when
sealed with the fleet's secret, fresh and never seen before; even then, what
it says moves a breaker only as far as a local event could (docs/fleet.md,
"Trust"): every sidecar stays up, no opening lasts past `max_retry_after`,
and an epoch far ahead is refused, so later real resets still arrive."""
from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time

from conftest import POSTGRES, Fleet, Subscription, database_now_ms, psql, seal

BODY = """
defaults:
  trip: { consecutive_failures: 2, window: off }
  open: { duration: 1s, jitter: 0, backoff: { multiplier: 1, max: 2s }, max_retry_after: 2s }
  max_transitions_per_minute: off
breakers: { openai: {} }
"""
INT64_MAX = 2**63 - 1
YEAR_2262_MS = 9_214_646_400_000
PSQL = os.path.join(os.environ["FUSEBOX_TEST_PGBIN"], "psql")
INTRUDER = POSTGRES.replace("fusebox@", "intruder@", 1)


def make_intruder() -> None:
    psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'intruder') THEN CREATE ROLE intruder LOGIN; END IF; END $$")


def as_intruder(payload: dict | str) -> None:
    """NOTIFY from a role with no privilege on any fleet table: it can only connect."""
    text = (payload if isinstance(payload, str) else json.dumps(payload)).replace("'", "''")
    subprocess.run([PSQL, INTRUDER, "-Xqc", f"SELECT pg_notify('fusebox_fleet', '{text}')"], check=True, capture_output=True, text=True)


def refusals(sidecar, reason: str) -> int:
    return sum(line.get("refused", 0) for line in sidecar.log_lines() if line.get("event") == "fleet_message_refused" and line.get("reason") == reason)


def open_until_ms(sidecar) -> float | None:
    until = sidecar.ask('{"op":"status","breaker":"openai"}')["breakers"][0]["open_until"]
    return None if until is None else datetime.datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() * 1000


def test_a_connect_only_role_can_neither_forge_nor_replay_a_message():
    make_intruder()
    with Fleet(3, BODY) as fleet:
        subscriptions = [Subscription(s) for s in fleet.sidecars]
        base = {"f": fleet.name, "b": "openai", "o": "intruder#1", "t": database_now_ms(), "q": 1}
        # Unsigned, then sealed with a guessed key: what crashed every peer before messages were sealed.
        as_intruder({**base, "k": "calls", "n": 1})
        as_intruder({**base, "k": "calls", "n": INT64_MAX})
        as_intruder(seal({**base, "s": "open", "u": YEAR_2262_MS, "r": INT64_MAX, "p": INT64_MAX, "e": INT64_MAX}, secret="guess" * 8))
        time.sleep(1)  # pacing: a negative check: time for a crash to happen
        assert all(s.process.poll() is None for s in fleet.sidecars), "every sidecar is up"
        for sidecar, subscription in zip(fleet.sidecars, subscriptions):
            assert not subscription.has(lambda e: "new_state" in e), f"{sidecar.name} moved on a forged message"
            assert refusals(sidecar, "unsigned") >= 1 and refusals(sidecar, "signature") == 1, sidecar.log.read_text()[-1500:]

        # The intruder listens while a real opening and its reset go by, then sends them again.
        listener = subprocess.Popen([PSQL, INTRUDER, "-X", "-c", "LISTEN fusebox_fleet", "-c", "SELECT pg_sleep(3)"],
                                    stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)  # pacing: the intruder's LISTEN is up (psql gives no signal)
        origin = fleet.sidecars[0]
        for _ in range(2):
            origin.ask('{"op":"record","breaker":"openai","status":503}')
        for subscription in subscriptions[1:]:
            subscription.wait_for(lambda e: e.get("new_state") == "open" and e.get("reason") == "fleet")
        origin.ask('{"op":"reset","breaker":"openai"}', admin=True)
        for peer, subscription in zip(fleet.sidecars[1:], subscriptions[1:]):
            subscription.wait_for(lambda e: e.get("new_state") == "closed" and e.get("reason") == "fleet")
        heard = listener.communicate(timeout=10)[0]
        captured = re.findall(r'with payload "(fb1\..*)" received from server', heard)
        assert any('"s":"open"' in payload for payload in captured), heard
        for subscription in subscriptions:
            subscription.clear()
        for payload in captured:
            if '"s":"open"' in payload or '"k":"calls"' in payload:
                as_intruder(payload)
        time.sleep(1)  # pacing: a negative check: time for a replay to be (wrongly) taken
        for peer, subscription in zip(fleet.sidecars[1:], subscriptions[1:]):
            assert peer.state("openai") == "closed", f"{peer.name} reopened on a replayed message"
            assert not subscription.has(lambda e: "new_state" in e)
            assert refusals(peer, "replayed") >= 1, peer.log.read_text()[-1500:]
        for subscription in subscriptions:
            subscription.close()


def test_a_host_holding_the_secret_moves_breakers_only_as_far_as_a_local_event_could():
    """A compromised host (or a buggy one) seals what it sends: the numbers it sends are still bounded."""
    make_intruder()
    with Fleet(3, BODY) as fleet:
        subscriptions = [Subscription(s) for s in fleet.sidecars]
        sequence = iter(range(1, 100))

        def as_compromised_host(message: dict) -> None:
            as_intruder(seal({"f": fleet.name, "b": "openai", "o": "rogue#1", "t": database_now_ms(), "q": next(sequence), **message}))

        # Failures in a row of 1, then of 2^63-1: the sum overflowed (SIGILL on every peer).
        as_compromised_host({"k": "calls", "n": 1})
        as_compromised_host({"k": "calls", "n": INT64_MAX})
        for subscription in subscriptions:
            subscription.wait_for(lambda e: e.get("new_state") == "open")
        time.sleep(0.5)  # pacing: a negative check: time for a crash to happen
        assert all(s.process.poll() is None for s in fleet.sidecars), "every sidecar is up"

        # An opening until 2262 (2^63-1 ms from now) with 2^63-1 failed probes, at the next epoch: believed only
        # up to max_retry_after.
        epoch = int(psql(f"SELECT epoch FROM fleet_breakers WHERE fleet = '{fleet.name}' AND breaker = 'openai'")[0][0])
        sent = time.time() * 1000
        as_compromised_host({"s": "open", "u": YEAR_2262_MS, "r": INT64_MAX, "p": INT64_MAX, "e": epoch + 1})
        # And an epoch of 2^63-1: believed, it would hide every later real publication.
        as_compromised_host({"s": "open", "u": YEAR_2262_MS, "r": INT64_MAX, "p": 0, "e": INT64_MAX})
        time.sleep(0.5)  # pacing: a negative check: time for the messages to be (wrongly) taken
        for sidecar in fleet.sidecars:
            until = open_until_ms(sidecar)
            assert until is None or until <= sent + 2_000 + 500, f"{sidecar.name} open until {until - sent:.0f} ms from the message"
        # A failed probe on a breaker told of 2^63-1 failed probes: the count overflowed, or looped with multiplier 1.
        time.sleep(2.5)  # pacing: the 2 s opening ends and its probe is due
        for sidecar in fleet.sidecars:
            sidecar.ask('{"op":"record","breaker":"openai","status":503}')
        time.sleep(0.5)  # pacing: a negative check: time for a crash or a hang to happen
        assert all(s.process.poll() is None for s in fleet.sidecars), "every sidecar is up"

        # A real reset still reaches every peer.
        for subscription in subscriptions:
            subscription.clear()
        origin = fleet.sidecars[0]
        for _ in range(2):
            origin.ask('{"op":"record","breaker":"openai","status":503}')
        origin.ask('{"op":"reset","breaker":"openai"}', admin=True)
        for peer, subscription in zip(fleet.sidecars[1:], subscriptions[1:]):
            subscription.wait_for(lambda e: e.get("new_state") == "closed" and e.get("reason") == "fleet")
            assert peer.state("openai") == "closed"
        for subscription in subscriptions:
            subscription.close()

        # A row's end forged by the fleet's own role, at the bottom of bigint: a sidecar (re)connecting
        # reads it back as a duration from now, which must not overflow and keep it from connecting.
        psql(f"UPDATE fleet_breakers SET state = 'open', open_until_ms = -9223372036854775807, epoch = epoch + 1 "
             f"WHERE fleet = '{fleet.name}' AND breaker = 'openai'")
        restarted = fleet.sidecars[1]
        connected = restarted.log.read_text().count('"fleet_connected"')
        restarted.stop()
        restarted.start()
        deadline = time.time() + 15
        while restarted.log.read_text().count('"fleet_connected"') == connected:
            assert time.time() < deadline, restarted.log.read_text()[-1500:]
            time.sleep(0.05)  # poll
        assert restarted.state("openai") == "closed", "an opening that ended long ago is not news"
