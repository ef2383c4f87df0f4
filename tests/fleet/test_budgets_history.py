"""Fleet budgets, a PostgreSQL outage, the shipped history and analyze --db."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import statistics
import subprocess
import threading
import time

from conftest import BINARY, POSTGRES, Fleet, Stub, collect, pg_ctl, psql, start_workers, total


def test_a_fleet_budget_holds_the_provider_limit_and_follows_demand():
    per_minute = 120
    limited, spare = Stub("limited", per_minute=per_minute), Stub("ok")
    body = f"""
breakers:
  limited: {{ rate: {{ requests: {per_minute}, per: 1m, scope: fleet }} }}
  spare: {{}}
chains: {{ llm: [limited, spare] }}
"""
    offered = 3 * per_minute / 60.0  # requests a second, all sidecars together
    sums = []
    try:
        with Fleet(3, body) as fleet:
            providers = {"limited": limited.url, "spare": spare.url}
            # One sidecar sends 80 % of the load, the two others 10 % each.
            workers = start_workers(fleet.sidecars[0], 4, "route", "llm", 60, 4 / (0.8 * offered), providers)
            workers += start_workers(fleet.sidecars[1], 1, "route", "llm", 60, 1 / (0.1 * offered), providers)
            workers += start_workers(fleet.sidecars[2], 1, "route", "llm", 60, 1 / (0.1 * offered), providers)
            deadline = time.time() + 58
            while time.time() < deadline:
                rows = psql(f"SELECT coalesce(sum(share), 0), count(*) FROM fleet_leases WHERE fleet = '{fleet.name}' "
                            f"AND expires_ms > (extract(epoch from now()) * 1000)::bigint")
                sums.append(float(rows[0][0]))
                time.sleep(1)  # pacing: the lease sum sampled once a second during the run
            results = collect(workers, timeout=120)
            shares = psql(f"SELECT member, round(share::numeric, 1), round(demand::numeric, 2) FROM fleet_leases "
                          f"WHERE fleet = '{fleet.name}' ORDER BY share DESC")
    finally:
        limited.stop()
        spare.stop()
    calls = total(results, "calls")
    print(f"\nfleet budget {per_minute}/min, {3 * per_minute}/min offered for 60 s (80/10/10): the limited provider saw "
          f"{limited.calls} ({limited.calls / per_minute:.0%} of R), 429s {limited.too_many}; calls {calls}; "
          f"leases at the end {shares}; largest sum of live shares {max(sums):.1f}")
    assert limited.too_many == 0
    assert limited.calls <= per_minute * 1.05
    assert limited.calls >= per_minute * 0.9
    assert max(sums) <= per_minute + 1e-6
    assert float(shares[0][1]) >= 0.6 * per_minute, "the busiest sidecar holds most of the capacity"


def decision_latencies(path: str, seconds: float, failures: list) -> list[float]:
    """acquire + report pairs on one connection for `seconds`; a refused or failed answer is recorded."""
    latencies = []
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        reader = s.makefile()
        end = time.time() + seconds
        while time.time() < end:
            started = time.perf_counter()
            s.sendall(b'{"op":"acquire","breaker":"steady"}\n')
            answer = json.loads(reader.readline())
            if not answer.get("allowed"):
                failures.append(answer)
                continue
            s.sendall(json.dumps({"op": "report", "permit": answer["permit"], "outcome": "success", "latency_ms": 1}).encode() + b"\n")
            reply = json.loads(reader.readline())
            if not reply.get("ok"):
                failures.append(reply)
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.002)  # pacing: decisions every 2 ms
    return latencies


HISTORY = """
defaults:
  trip: { consecutive_failures: 3, window: off }
  open: { duration: 2s, jitter: 0, backoff: off }
  max_transitions_per_minute: off
breakers: { steady: {}, flaky: {}, spare: {} }
chains: { llm: [flaky, spare] }
"""

TABLES = {"runs": "history_runs", "transitions": "history_transitions", "failures": "history_failures",
          "traffic": "history_traffic", "routes": "history_routes"}


def test_a_postgres_outage_slows_no_decision_keeps_openings_local_and_loses_no_history():
    flaky, spare = Stub("dead", delay=0.01), Stub("ok")
    failures: list = []
    try:
        with Fleet(3, HISTORY, extra="  ship_interval: 500ms\n") as fleet:
            providers = {"flaky": flaky.url, "spare": spare.url}
            workers = []
            for sidecar in fleet.sidecars:
                workers += start_workers(sidecar, 2, "route", "llm", 50, 0.05, providers)
            before = decision_latencies(fleet.sidecars[0].socket, 5, failures)
            pg_ctl("stop")
            stopped_at = time.time()
            # Openings stay local while PostgreSQL is away.
            during = decision_latencies(fleet.sidecars[0].socket, 5, failures)
            for _ in range(3):
                fleet.sidecars[1].ask('{"op":"record","breaker":"steady","outcome":"failure"}')
            time.sleep(1)  # pacing: a negative check: open for 2 s on host1; peers would have followed within milliseconds
            local_states = [s.state("steady") for s in fleet.sidecars]
            time.sleep(max(0.0, 30 - (time.time() - stopped_at)))  # pacing: PostgreSQL stays down 30 s
            pg_ctl("start")
            collect(workers, timeout=120)
            reconnected = all(any(line.get("event") == "fleet_connected" and line.get("failed_attempts", 0) > 0
                                  for line in s.log_lines()) for s in fleet.sidecars)
            fleet.sidecars[1].ask('{"op":"reset","breaker":"steady","local":true}', admin=True)
            time.sleep(3)  # pacing: traffic after the outage, for the shipper to carry
            for sidecar in fleet.sidecars:
                sidecar.stop()  # the last pass ships the store's final rows
            warnings = [line for s in fleet.sidecars for line in s.log_lines()
                        if line.get("event", "").startswith("fleet_") and line.get("level") == "warning"]

            local = {}
            for sidecar in fleet.sidecars:
                with sqlite3.connect(sidecar.store) as db:
                    for table in TABLES:
                        for instance, count in db.execute(f"SELECT instance, count(*) FROM {table} GROUP BY instance"):
                            local[(table, instance)] = local.get((table, instance), 0) + count
            remote = {}
            for table, history in TABLES.items():
                for instance, count in psql(f"SELECT instance, count(*) FROM {history} WHERE fleet = '{fleet.name}' GROUP BY instance"):
                    remote[(table, instance)] = int(count)
            traffic_local = sum(sqlite3.connect(s.store).execute("SELECT coalesce(sum(successes + failures), 0) FROM traffic").fetchone()[0]
                                for s in fleet.sidecars)
            traffic_remote = int(psql(f"SELECT coalesce(sum(successes + failures), 0) FROM history_traffic WHERE fleet = '{fleet.name}'")[0][0])

            # analyze over PostgreSQL finds what analyze over the three stores finds.
            from_files = json.loads(subprocess.run(
                [BINARY, "analyze", "--format", "json"] + sum((["--db", s.store] for s in fleet.sidecars), []),
                check=True, capture_output=True, text=True).stdout)
            from_postgres = json.loads(subprocess.run(
                [BINARY, "analyze", "--format", "json", "--db", POSTGRES, "--fleet", fleet.name],
                check=True, capture_output=True, text=True).stdout)
    finally:
        flaky.stop()
        spare.stop()
    p50_before, p50_during = statistics.median(before), statistics.median(during)
    print(f"\nacquire+report p50 {p50_before:.3f} ms before, {p50_during:.3f} ms with PostgreSQL stopped "
          f"({len(before)} and {len(during)} pairs, max {max(during):.1f} ms); states during the outage {local_states}; "
          f"rows {sum(local.values())} local, {sum(remote.values())} in PostgreSQL; fleet warnings {len(warnings)}; "
          f"incidents {len(from_files['incidents'])}")
    assert failures == [], "every decision was answered while PostgreSQL was away"
    assert max(during) < 5000, "no decision waited for PostgreSQL"
    assert local_states == ["closed", "open", "closed"]
    assert reconnected
    assert remote == local
    assert traffic_remote == traffic_local
    assert len(warnings) <= 3 * 3, "one line per sidecar on losing the link (and a reminder at most once a minute)"
    assert from_files["incidents"], "the outage of flaky made incidents"
    assert from_postgres["incidents"] == from_files["incidents"]
