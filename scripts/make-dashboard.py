#!/usr/bin/env python3
"""Writes dashboards/grafana/fusebox.json. The dashboard is generated so its
panels stay uniform; edit this file and run it, then commit both."""
import json
import pathlib

S = 'job=~"$job",instance=~"$instance"'
B = S + ',breaker=~"$breaker"'
R = "$__rate_interval"


def target(expr, legend, ref):
    return {"datasource": {"type": "prometheus", "uid": "${datasource}"}, "expr": expr,
            "legendFormat": legend, "refId": ref}


def panel(pid, title, kind, exprs, x, y, w=12, h=8, unit=None, extra=None):
    p = {
        "id": pid, "title": title, "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, l, chr(65 + i)) for i, (e, l) in enumerate(exprs)],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    if extra:
        for key, value in extra.items():
            p[key] = value if key != "fieldConfig" else {**p["fieldConfig"], **value}
    return p


# One number per state, per host: a timeline row for every (instance, breaker), never summed across hosts.
STATES = [("closed", 0, "green"), ("half_open", 1, "yellow"), ("open", 2, "red"), ("forced_open", 3, "dark-red"),
          ("disabled", 4, "blue"), ("metrics_only", 5, "purple")]
state_expr = " + ".join(
    f'{code} * max by (instance, breaker) (fusebox_breaker_state{{{B},state="{name}"}})' for name, code, _ in STATES if code)
state_mappings = {str(code): {"text": name.replace("_", " "), "color": color} for name, code, color in STATES}


def timeseries(pid, title, exprs, x, y, unit, w=12, h=8, extra=None):
    return panel(pid, title, "timeseries", exprs, x, y, w=w, h=h, unit=unit, extra=extra)


panels = [
    panel(1, "Breaker state per host", "state-timeline", [(state_expr, "{{instance}} {{breaker}}")], 0, 0, w=24, h=8, extra={
        "fieldConfig": {"defaults": {
            "mappings": [{"type": "value", "options": state_mappings}],
            "color": {"mode": "thresholds"},
            "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}}}}),
    panel(2, "Sidecars up", "state-timeline", [(f'up{{{S}}}', "{{instance}}")], 0, 8, w=12, h=6, extra={
        "fieldConfig": {"defaults": {
            "mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}],
            "color": {"mode": "thresholds"},
            "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}}}}),
    timeseries(3, "Calls clients let through without a breaker (fail-open)",
               [(f'sum by (instance) (increase(fusebox_client_fail_open_total{{{S}}}[{R}]))', "{{instance}}")], 12, 8, "short", h=6),
    timeseries(4, "Calls by outcome", [(f'sum by (breaker, outcome) (rate(fusebox_calls_total{{{B}}}[{R}]))', "{{breaker}} {{outcome}}")],
               0, 14, "reqps"),
    timeseries(5, "Failure and slow-call ratio (-1: fewer calls than minimum_calls)",
               [(f'max by (instance, breaker) (fusebox_failure_ratio{{{B}}})', "{{instance}} {{breaker}} failure"),
                (f'max by (instance, breaker) (fusebox_slow_call_ratio{{{B}}})', "{{instance}} {{breaker}} slow")],
               12, 14, "percentunit", extra={"fieldConfig": {"defaults": {
                   "unit": "percentunit", "min": -1, "max": 1, "custom": {"thresholdsStyle": {"mode": "line"}},
                   "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.5}]}}}}),
    timeseries(6, "Refused acquires by reason", [(f'sum by (breaker, reason) (rate(fusebox_not_permitted_total{{{B}}}[{R}]))', "{{breaker}} {{reason}}")],
               0, 22, "reqps"),
    timeseries(7, "Routes: fallbacks and nowhere to go", [
        (f'sum by (chain, from, to) (rate(fusebox_fallbacks_total{{{S}}}[{R}]))', "{{chain}}: {{from}} → {{to}}"),
        (f'sum by (chain, reason) (rate(fusebox_route_exhausted_total{{{S}}}[{R}]))', "{{chain}}: exhausted ({{reason}})")], 12, 22, "reqps"),
    timeseries(8, "Permits in flight against max_in_flight", [
        (f'sum by (instance, breaker) (fusebox_permits_in_flight{{{B}}})', "{{instance}} {{breaker}} in flight"),
        (f'max by (instance, breaker) (fusebox_max_in_flight{{{B}}})', "{{instance}} {{breaker}} cap")], 0, 30, "short"),
    timeseries(9, "Permits expired and abandoned", [
        (f'sum by (breaker) (rate(fusebox_permits_expired_total{{{B}}}[{R}]))', "{{breaker}} expired"),
        (f'sum by (breaker) (rate(fusebox_permits_abandoned_total{{{B}}}[{R}]))', "{{breaker}} abandoned")], 12, 30, "reqps"),
    timeseries(10, "Call duration p99 by outcome", [
        (f'histogram_quantile(0.99, sum by (le, breaker, outcome) (rate(fusebox_call_duration_seconds_bucket{{{B}}}[{R}])))',
         "{{breaker}} {{outcome}}")], 0, 38, "s"),
    timeseries(11, "Sidecar request latency p99 by op", [
        (f'histogram_quantile(0.99, sum by (le, op) (rate(fusebox_request_duration_seconds_bucket{{{S}}}[{R}])))', "{{op}}")],
               12, 38, "s"),
    timeseries(12, "Budget rejections by reason", [
        (f'sum by (breaker, reason) (rate(fusebox_budget_rejections_total{{{B}}}[{R}]))', "{{breaker}} {{reason}}")], 0, 46, "reqps"),
    timeseries(13, "Queue: waiting against its max", [
        (f'sum by (instance, breaker) (fusebox_queue_depth{{{B}}})', "{{instance}} {{breaker}} waiting"),
        (f'max by (instance, breaker) (fusebox_queue_max{{{B}}})', "{{instance}} {{breaker}} max")], 12, 46, "short"),
    timeseries(14, "Queue wait p99", [
        (f'histogram_quantile(0.99, sum by (le, breaker) (rate(fusebox_queue_wait_seconds_bucket{{{B}}}[{R}])))', "{{breaker}}")],
               0, 54, "s"),
    timeseries(15, "Rate budget: requests available against capacity", [
        (f'max by (instance, breaker) (fusebox_rate_tokens_available{{{B}}})', "{{instance}} {{breaker}} available"),
        (f'max by (instance, breaker) (fusebox_rate_capacity{{{B}}})', "{{instance}} {{breaker}} capacity")], 12, 54, "short"),
    timeseries(16, "Token budget: tokens available against capacity", [
        (f'max by (instance, breaker) (fusebox_token_budget_available{{{B}}})', "{{instance}} {{breaker}} available"),
        (f'max by (instance, breaker) (fusebox_token_capacity{{{B}}})', "{{instance}} {{breaker}} capacity")], 0, 62, "short"),
    timeseries(17, "Store healthy (1) or failing (0)", [(f'fusebox_store_healthy{{{S}}}', "{{instance}}")], 12, 62, "short"),
    timeseries(18, "Store rows queued", [(f'fusebox_store_queue_depth{{{S}}}', "{{instance}}")], 0, 70, "short"),
    timeseries(19, "Store errors and dropped rows", [
        (f'sum by (instance) (rate(fusebox_store_errors_total{{{S}}}[{R}]))', "{{instance}} errors"),
        (f'sum by (instance) (rate(fusebox_store_dropped_total{{{S}}}[{R}]))', "{{instance}} dropped rows")], 12, 70, "ops"),
    timeseries(20, "Clients connected", [(f'fusebox_clients_connected{{{S}}}', "{{instance}}")], 0, 78, "short"),
    timeseries(21, "Protocol errors", [(f'sum by (code) (rate(fusebox_protocol_errors_total{{{S}}}[{R}]))', "{{code}}")], 12, 78, "reqps"),
    timeseries(22, "Process: resident memory", [(f'process_resident_memory_bytes{{{S}}}', "{{instance}}")], 0, 86, "bytes", w=8),
    timeseries(23, "Process: CPU", [(f'rate(process_cpu_seconds_total{{{S}}}[{R}])', "{{instance}}")], 8, 86, "percentunit", w=8),
    timeseries(24, "Process: open file descriptors against the limit", [
        (f'process_open_fds{{{S}}}', "{{instance}} open"), (f'process_max_fds{{{S}}}', "{{instance}} limit")], 16, 86, "short", w=8),
    timeseries(25, "Health probes by outcome (breakers with probe:)", [
        (f'sum by (breaker, outcome) (increase(fusebox_probes_total{{{B}}}[{R}]))', "{{breaker}} {{outcome}}")], 0, 94, "short", w=8),
    timeseries(26, "Health probe duration p99", [
        (f'histogram_quantile(0.99, sum by (le, breaker) (rate(fusebox_probe_duration_seconds_bucket{{{B}}}[{R}])))', "{{breaker}}")],
               8, 94, "s", w=8),
    timeseries(27, "Fastest chains: traffic switches", [
        (f'sum by (chain) (increase(fusebox_route_switches_total{{{S}}}[{R}]))', "{{chain}}")], 16, 94, "short", w=8),
]

def variable(name, label, definition):
    return {"name": name, "type": "query", "label": label,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": definition, "refId": name}, "definition": definition,
            "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}, "refresh": 2}


dashboard = {
    "title": "Fusebox circuit breakers",
    "uid": "fusebox-breakers",
    "schemaVersion": 39,
    "version": 2,
    "editable": True,
    "time": {"from": "now-6h", "to": "now"},
    "refresh": "30s",
    "tags": ["fusebox", "circuit-breaker"],
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        variable("job", "Job", "label_values(fusebox_build_info, job)"),
        variable("instance", "Instance", 'label_values(fusebox_build_info{job=~"$job"}, instance)'),
        variable("breaker", "Breaker", f"label_values(fusebox_breaker_state{{{S}}}, breaker)"),
    ]},
    # Every transition as an annotation on every panel: what changed, where, and why.
    "annotations": {"list": [{
        "name": "Transitions", "enable": True, "iconColor": "orange",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": f'sum by (instance, breaker, from, to, reason) (changes(fusebox_transitions_total{{{B}}}[1m])) > 0',
        "step": "60s", "titleFormat": "{{breaker}}: {{from}} → {{to}}", "textFormat": "{{instance}}, {{reason}}",
        "useValueForTime": False}]},
    "panels": panels,
}

out = pathlib.Path(__file__).resolve().parent.parent / "dashboards" / "grafana" / "fusebox.json"
out.write_text(json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n")
print(f"wrote {out}")
