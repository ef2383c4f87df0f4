"""Clock skew: three sidecars of one fleet, one on the true clock, one 30 s
ahead and one 30 s behind (Debian's faketime; its monotonic clock left
alone, which a host's skew does not touch either, and with which libfaketime
kept the sidecar from stopping on SIGTERM).

Each host in turn trips the breaker, so each clock is once the publisher's:
an opening told in the publisher's wall clock would end 30 s early or late on
the others. With openings told as durations and leases kept in PostgreSQL's
clock, every round shows one probe per open period and none before the
period ended, judged on each sidecar's own clock: its half-open transition
is never stamped before the `open_until` of the opening it logged. (How
soon after the period a probe comes is a latency, not a correctness
property: it is printed, and docs/fleet.md gives the measured figures; a
test that asserted it failed under load.)"""
from __future__ import annotations

import datetime
import json
import os
import random
import shutil
import socket
import time

import pytest

from conftest import Fleet

PERIOD = 2.0
# Waits for an event, not limits on how fast it comes: generous, so a loaded machine does not fail them.
WAIT = 15.0
BODY = f"""
defaults:
  trip: {{ consecutive_failures: 2, window: off }}
  open: {{ duration: {int(PERIOD)}s, jitter: 0, backoff: off }}
  half_open: {{ probes: 1, successes_to_close: 1, max_wait: 60s }}
  max_transitions_per_minute: off
breakers: {{ flaky: {{}} }}
"""
SKEWS = {0: 0, 1: +30, 2: -30}


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

    def close(self) -> None:
        self.sock.close()


def skewed_fleet() -> Fleet:
    if not shutil.which("faketime"):
        pytest.fail("faketime is missing: install Debian's faketime (scripts/prerequisites names it)")
    fleet = Fleet(3, BODY)
    for index, seconds in SKEWS.items():
        if seconds:
            fleet.sidecars[index].wrapper = ["faketime", "-f", f"{seconds:+d}s"]
            fleet.sidecars[index].env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return fleet


def clock_offset(sidecar, started: float) -> float:
    """How far the sidecar's clock is from this test's: its first log line's timestamp against when it was started."""
    first = next(line for line in sidecar.log_lines() if "timestamp" in line)
    return datetime.datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")).timestamp() - started


def wait_all(fleet: Fleet, state: str, within: float) -> None:
    deadline = time.monotonic() + within
    while any(s.state("flaky") != state for s in fleet.sidecars):
        assert time.monotonic() < deadline, f"not all {state} within {within} s: {[s.state('flaky') for s in fleet.sidecars]}"
        time.sleep(0.02)  # poll


def probe_round(fleet: Fleet, connections: list[Connection], status: int) -> tuple[float, str]:
    """Traffic on every sidecar until one lets a call through (the probe), reported with `status`.
    Returns when it came, in seconds after the round began, and on which host."""
    began = time.monotonic()
    while time.monotonic() - began < PERIOD + WAIT:
        for connection in random.sample(connections, len(connections)):
            answer = connection.ask({"op": "acquire", "breaker": "flaky"})
            if answer.get("allowed"):
                at = time.monotonic() - began
                assert connection.ask({"op": "report", "permit": answer["permit"], "status": status})["ok"]
                return at, connection.name.rsplit("-", 1)[-1]
        time.sleep(0.02)  # poll
    raise AssertionError(f"no probe within {PERIOD + WAIT} s: {[s.state('flaky') for s in fleet.sidecars]}")


def test_every_host_as_publisher_probes_once_per_open_period_on_time():
    fleet = skewed_fleet()
    started = time.time()
    with fleet:
        offsets = {index: clock_offset(fleet.sidecars[index], started) for index in SKEWS}
        for index, seconds in SKEWS.items():
            assert abs(offsets[index] - seconds) < 5, f"host{index} should run {seconds:+d} s off, runs {offsets[index]:+.1f} s"
        connections = [Connection(s) for s in fleet.sidecars]
        rounds = []
        for tripper in (1, 2, 0):
            for _ in range(2):
                fleet.sidecars[tripper].ask('{"op":"record","breaker":"flaky","status":503}')
            wait_all(fleet, "open", within=WAIT)
            # The period restarts with the failed probe, published by whichever host won its lease.
            first = probe_round(fleet, connections, status=503)
            second = probe_round(fleet, connections, status=200)
            closed = time.monotonic()
            wait_all(fleet, "closed", within=WAIT)
            rounds.append((f"host{tripper}", first, second, round(time.monotonic() - closed, 3)))
        for connection in connections:
            connection.close()
        # On each sidecar's own clock (skew cancels): no half-open before the end of the opening it logged last.
        half_opens = 0
        for sidecar in fleet.sidecars:
            open_until = None
            for line in sidecar.log_lines():
                if line.get("event") != "transition" or line.get("breaker") != "flaky":
                    continue
                if line["new_state"] == "open":
                    # What remains of the period, on this host's clock: never more than the period, never past
                    # (an opening told in the publisher's wall clock would be 30 s off either way).
                    open_until = stamp(line["open_until"])
                    remaining = (open_until - stamp(line["timestamp"])).total_seconds()
                    assert 0 <= remaining <= PERIOD + 0.001, f"{sidecar.name} logged an opening of {remaining:.3f} s: {line}"
                elif line["new_state"] == "half_open":
                    half_opens += 1
                    assert open_until is not None and stamp(line["timestamp"]) >= open_until, \
                        f"{sidecar.name} went half-open at {line['timestamp']}, its opening ran until {open_until}: {rounds}"
        assert half_opens == 2 * len(rounds), f"one probe per open period: {half_opens} half-open transitions in {len(rounds)} rounds"

    print(f"\nclock offsets (s): {[round(o, 1) for o in offsets.values()]}")
    print("rounds (tripped by, first probe (s, host), second probe (s, host), all closed after (s)):")
    for line in rounds:
        print(f"  {line}")


def stamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
