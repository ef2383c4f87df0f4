"""`fusebox serve` with `otlp:` pushes to a loopback OTLP/HTTP receiver that
this test runs: every body must parse as the OTLP protobuf messages (through
`opentelemetry-proto`'s JSON mapping), and the metric names, their
attributes, the resource and one transition's log record must arrive."""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("FUSEBOX_BINARY", str(ROOT / ".build" / "debug" / "fusebox"))


class Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1: keeps each request's path, headers and parsed body."""

    def __init__(self, refuse_logs: int = 0) -> None:
        self.received: list[tuple[str, dict, object]] = []
        self.refused = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = {"/v1/metrics": ExportMetricsServiceRequest, "/v1/logs": ExportLogsServiceRequest}[self.path]()
                # Parse strictly: an unknown field or a wrong type fails the test.
                json_format.Parse(body, message)
                with receiver.lock:
                    if self.path == "/v1/logs" and receiver.refused < refuse_logs:
                        receiver.refused += 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    receiver.received.append((self.path, dict(self.headers), message))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, path: str, matches, timeout: float = 30) -> tuple[dict, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for got_path, headers, message in self.received:
                    if got_path == path and matches(message):
                        return headers, message
            time.sleep(0.05)  # poll: the sidecar exports every second
        raise AssertionError(f"nothing matching arrived on {path} within {timeout} s; got {[p for p, _, _ in self.received]}")


def attributes(items) -> dict:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in items}


def start_sidecar(receiver: Receiver) -> tuple[subprocess.Popen, socket.socket]:
    """A sidecar exporting to `receiver` every second, with `openai` opened by two failures; and its connection."""
    directory = tempfile.mkdtemp()
    sock = os.path.join(directory, "fusebox.sock")
    config = os.path.join(directory, "fusebox.yaml")
    with open(config, "w") as f:
        f.write(f"""
store: off
http: off
instance: otlp-test
otlp:
  endpoint: {receiver.endpoint}/
  interval: 1s
  headers: {{ authorization: "Bearer ${{OTLP_TEST_TOKEN}}" }}
defaults:
  trip: {{ consecutive_failures: 2, window: off }}
breakers: {{ openai: {{}} }}
""")
    env = dict(os.environ, OTLP_TEST_TOKEN="t0ken")
    sidecar = subprocess.Popen([BINARY, "serve", "--config", config, "--socket", sock, "--admin-socket", "off"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        assert sidecar.poll() is None, sidecar.stdout.read().decode()
        assert time.monotonic() < deadline, "no socket"
        time.sleep(0.05)  # poll: the socket appears once the sidecar is up
    client = socket.socket(socket.AF_UNIX)
    client.connect(sock)
    reader = client.makefile()
    for _ in range(2):
        client.sendall(json.dumps({"op": "record", "breaker": "openai", "status": 503}).encode() + b"\n")
        assert json.loads(reader.readline())["ok"] is True
    return sidecar, client


def has_records(message) -> bool:
    return any(r.attributes for rl in message.resource_logs for sl in rl.scope_logs for r in sl.log_records)


def test_metrics_and_a_transition_arrive_over_otlp_http() -> None:
    receiver = Receiver()
    sidecar, _ = start_sidecar(receiver)
    try:
        headers, logs = receiver.wait_for("/v1/logs", has_records)
        assert headers["authorization"] == "Bearer t0ken", "the configured header, its ${VAR} from the environment"
        resource = attributes(logs.resource_logs[0].resource.attributes)
        assert resource["service.name"] == "fusebox" and resource["service.instance.id"] == "otlp-test"
        record = logs.resource_logs[0].scope_logs[0].log_records[0]
        fields = attributes(record.attributes)
        assert fields["event.name"] == "transition"
        assert (fields["breaker"], fields["old_state"], fields["new_state"]) == ("openai", "closed", "open")
        assert fields["reason"] == "consecutive_failures" and fields["failure_count"] == 2
        assert record.severity_text == "WARN" and record.severity_number == 13 and record.time_unix_nano > 0

        def the_opening(point) -> bool:
            labels = attributes(point.attributes)
            return (labels.get("breaker"), labels.get("to"), labels.get("reason")) == ("openai", "open", "consecutive_failures")

        def has_counted_the_opening(message) -> bool:
            return any(m.name == "fusebox_transitions" and any(the_opening(p) and p.as_double == 1 for p in m.sum.data_points)
                       for rm in message.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)

        # Exports before the opening carry the same series at 0: wait for the one that counted it.
        _, metrics = receiver.wait_for("/v1/metrics", has_counted_the_opening)
        by_name = {m.name: m for m in metrics.resource_metrics[0].scope_metrics[0].metrics}
        transitions = by_name["fusebox_transitions"]
        assert transitions.sum.is_monotonic and transitions.sum.aggregation_temporality == 2
        assert all(p.start_time_unix_nano < p.time_unix_nano for p in transitions.sum.data_points)
        state = by_name["fusebox_breaker_state"]
        assert any(attributes(p.attributes).get("breaker") == "openai" for p in state.gauge.data_points)
        latency = next(m for m in by_name.values() if m.WhichOneof("data") == "histogram")
        assert latency.unit == "s" and latency.histogram.aggregation_temporality == 2
        for p in latency.histogram.data_points:
            assert len(p.bucket_counts) == len(p.explicit_bounds) + 1 and sum(p.bucket_counts) == p.count
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=30)
        receiver.server.shutdown()


def test_a_transition_the_collector_refused_is_sent_again() -> None:
    receiver = Receiver(refuse_logs=2)
    sidecar, _ = start_sidecar(receiver)
    try:
        _, logs = receiver.wait_for("/v1/logs", has_records)
        assert receiver.refused == 2, "refused twice, then accepted: the record was kept, not lost"
        records = [r for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
        assert [attributes(r.attributes)["new_state"] for r in records] == ["open"], "sent once it was accepted, and only once"
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=30)
        receiver.server.shutdown()
