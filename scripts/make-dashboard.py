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


# Rows, each a list of (panel maker, width, height); positions are laid out below, left to right.
def value_colors(options):
    """A state timeline's text and colour for each value."""
    return {"fieldConfig": {"defaults": {
        "mappings": [{"type": "value", "options": options}],
        "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}}}}


STATE_COLORS = value_colors(state_mappings)
UP_COLORS = value_colors({"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}})
RATIO_LIMITS = {"fieldConfig": {"defaults": {
    "unit": "percentunit", "min": -1, "max": 1, "custom": {"thresholdsStyle": {"mode": "line"}},
    "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.5}]}}}}


def p99(metric, by, selector=B):
    return f'histogram_quantile(0.99, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{R}])))'


ROWS = [
    ("Overview", [
        ("state-timeline", "Breaker state per host", [(state_expr, "{{instance}} {{breaker}}")], None, 24, 8, STATE_COLORS),
        ("state-timeline", "Sidecars up", [(f'up{{{S}}}', "{{instance}}")], None, 12, 6, UP_COLORS),
        ("timeseries", "Calls clients let through without a breaker (fail-open)",
         [(f'sum by (instance) (increase(fusebox_client_fail_open_total{{{S}}}[{R}]))', "{{instance}}")], "short", 12, 6, None),
        ("timeseries", "Configuration reloads by result, and whether the last one applied", [
            (f'sum by (instance, result) (increase(fusebox_config_reloads_total{{{S}}}[{R}]))', "{{instance}} {{result}}"),
            (f'min by (instance) (fusebox_config_last_reload_successful{{{S}}})', "{{instance}} last applied (1) or refused (0)")],
         "short", 12, 6, None),
        ("timeseries", "Clients connected", [(f'fusebox_clients_connected{{{S}}}', "{{instance}}")], "short", 12, 6, None),
    ]),
    ("Breakers", [
        ("timeseries", "Calls by outcome", [(f'sum by (breaker, outcome) (rate(fusebox_calls_total{{{B}}}[{R}]))', "{{breaker}} {{outcome}}")],
         "reqps", 12, 8, None),
        ("timeseries", "Failure and slow-call ratio (-1: fewer calls than minimum_calls)", [
            (f'max by (instance, breaker) (fusebox_failure_ratio{{{B}}})', "{{instance}} {{breaker}} failure"),
            (f'max by (instance, breaker) (fusebox_slow_call_ratio{{{B}}})', "{{instance}} {{breaker}} slow")],
         "percentunit", 12, 8, RATIO_LIMITS),
        ("timeseries", "Refused acquires by reason",
         [(f'sum by (breaker, reason) (rate(fusebox_not_permitted_total{{{B}}}[{R}]))', "{{breaker}} {{reason}}")], "reqps", 12, 8, None),
        ("timeseries", "Routes: fallbacks and nowhere to go", [
            (f'sum by (chain, from, to) (rate(fusebox_fallbacks_total{{{S}}}[{R}]))', "{{chain}}: {{from}} → {{to}}"),
            (f'sum by (chain, reason) (rate(fusebox_route_exhausted_total{{{S}}}[{R}]))', "{{chain}}: exhausted ({{reason}})")],
         "reqps", 12, 8, None),
        ("timeseries", "Permits in flight against max_in_flight", [
            (f'sum by (instance, breaker) (fusebox_permits_in_flight{{{B}}})', "{{instance}} {{breaker}} in flight"),
            (f'max by (instance, breaker) (fusebox_max_in_flight{{{B}}})', "{{instance}} {{breaker}} cap")], "short", 12, 8, None),
        ("timeseries", "Permits expired and abandoned", [
            (f'sum by (breaker) (rate(fusebox_permits_expired_total{{{B}}}[{R}]))', "{{breaker}} expired"),
            (f'sum by (breaker) (rate(fusebox_permits_abandoned_total{{{B}}}[{R}]))', "{{breaker}} abandoned")], "reqps", 12, 8, None),
        ("timeseries", "Call duration p99 by outcome",
         [(p99("fusebox_call_duration_seconds", "breaker, outcome"), "{{breaker}} {{outcome}}")], "s", 8, 8, None),
        ("timeseries", "Time to first byte p99 (streamed answers)",
         [(p99("fusebox_time_to_first_byte_seconds", "breaker"), "{{breaker}}")], "s", 8, 8, None),
        ("timeseries", "Sidecar request latency p99 by op",
         [(p99("fusebox_request_duration_seconds", "op", S), "{{op}}")], "s", 8, 8, None),
        ("timeseries", "Fastest chains: traffic switches",
         [(f'sum by (chain) (increase(fusebox_route_switches_total{{{S}}}[{R}]))', "{{chain}}")], "short", 12, 8, None),
        ("timeseries", "Protocol errors", [(f'sum by (code) (rate(fusebox_protocol_errors_total{{{S}}}[{R}]))', "{{code}}")],
         "reqps", 12, 8, None),
    ]),
    ("Budgets and queues", [
        ("timeseries", "Budget rejections by reason",
         [(f'sum by (breaker, reason) (rate(fusebox_budget_rejections_total{{{B}}}[{R}]))', "{{breaker}} {{reason}}")], "reqps", 12, 8, None),
        ("timeseries", "Queue: waiting against its max", [
            (f'sum by (instance, breaker) (fusebox_queue_depth{{{B}}})', "{{instance}} {{breaker}} waiting"),
            (f'max by (instance, breaker) (fusebox_queue_max{{{B}}})', "{{instance}} {{breaker}} max")], "short", 12, 8, None),
        ("timeseries", "Queue wait p99", [(p99("fusebox_queue_wait_seconds", "breaker"), "{{breaker}}")], "s", 8, 8, None),
        ("timeseries", "Rate budget: requests available against capacity", [
            (f'max by (instance, breaker) (fusebox_rate_tokens_available{{{B}}})', "{{instance}} {{breaker}} available"),
            (f'max by (instance, breaker) (fusebox_rate_capacity{{{B}}})', "{{instance}} {{breaker}} capacity")], "short", 8, 8, None),
        ("timeseries", "Token budget: tokens available against capacity", [
            (f'max by (instance, breaker) (fusebox_token_budget_available{{{B}}})', "{{instance}} {{breaker}} available"),
            (f'max by (instance, breaker) (fusebox_token_capacity{{{B}}})', "{{instance}} {{breaker}} capacity")], "short", 8, 8, None),
    ]),
    ("Fleet", [
        ("state-timeline", "Fleet link per host", [(f'fusebox_fleet_connected{{{S}}}', "{{instance}}")], None, 12, 6, UP_COLORS),
        ("timeseries", "Fleet messages: published, applied, refused by reason", [
            (f'sum by (instance) (rate(fusebox_fleet_published_total{{{S}}}[{R}]))', "{{instance}} published"),
            (f'sum by (instance) (rate(fusebox_fleet_applied_total{{{S}}}[{R}]))', "{{instance}} applied"),
            (f'sum by (instance, reason) (rate(fusebox_fleet_messages_refused_total{{{S}}}[{R}]))', "{{instance}} refused ({{reason}})")],
         "ops", 12, 6, None),
        ("timeseries", "Fleet propagation p99 (peer publishes → this sidecar applies)",
         [(p99("fusebox_fleet_propagation_seconds", "instance", S), "{{instance}}")], "s", 8, 8, None),
        ("timeseries", "Fleet budget share per host",
         [(f'max by (instance, breaker, budget) (fusebox_fleet_budget_share{{{B}}})', "{{instance}} {{breaker}} {{budget}}")],
         "short", 8, 8, None),
        ("timeseries", "History shipping: lag and rows shipped", [
            (f'max by (instance) (fusebox_fleet_ship_lag_seconds{{{S}}})', "{{instance}} lag (s)"),
            (f'sum by (instance) (rate(fusebox_fleet_shipped_rows_total{{{S}}}[{R}]))', "{{instance}} rows/s")], "short", 8, 8, None),
    ]),
    ("Probes", [
        ("timeseries", "Health probes by outcome (breakers with probe:)",
         [(f'sum by (breaker, outcome) (increase(fusebox_probes_total{{{B}}}[{R}]))', "{{breaker}} {{outcome}}")], "short", 12, 8, None),
        ("timeseries", "Health probe duration p99", [(p99("fusebox_probe_duration_seconds", "breaker"), "{{breaker}}")], "s", 12, 8, None),
    ]),
    ("Process and store", [
        ("timeseries", "Process: resident memory", [(f'process_resident_memory_bytes{{{S}}}', "{{instance}}")], "bytes", 8, 8, None),
        ("timeseries", "Process: CPU", [(f'rate(process_cpu_seconds_total{{{S}}}[{R}])', "{{instance}}")], "percentunit", 8, 8, None),
        ("timeseries", "Process: open file descriptors against the limit", [
            (f'process_open_fds{{{S}}}', "{{instance}} open"), (f'process_max_fds{{{S}}}', "{{instance}} limit")], "short", 8, 8, None),
        ("timeseries", "Store healthy (1) or failing (0)", [(f'fusebox_store_healthy{{{S}}}', "{{instance}}")], "short", 8, 8, None),
        ("timeseries", "Store rows queued", [(f'fusebox_store_queue_depth{{{S}}}', "{{instance}}")], "short", 8, 8, None),
        ("timeseries", "Store errors and dropped rows", [
            (f'sum by (instance) (rate(fusebox_store_errors_total{{{S}}}[{R}]))', "{{instance}} errors"),
            (f'sum by (instance) (rate(fusebox_store_dropped_total{{{S}}}[{R}]))', "{{instance}} dropped rows")], "ops", 8, 8, None),
    ]),
]


def layout(rows):
    """Row headers and their panels, placed left to right and wrapped at Grafana's 24 columns."""
    out, y, pid = [], 0, 1
    for title, specs in rows:
        out.append({"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
                    "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}})
        pid, y = pid + 1, y + 1
        x, line_height = 0, 0
        for kind, name, exprs, unit, w, h, extra in specs:
            if x + w > 24:
                x, y, line_height = 0, y + line_height, 0
            out.append(panel(pid, name, kind, exprs, x, y, w=w, h=h, unit=unit, extra=extra))
            pid, x, line_height = pid + 1, x + w, max(line_height, h)
        y += line_height
    return out


panels = layout(ROWS)

def variable(name, label, definition):
    return {"name": name, "type": "query", "label": label,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": definition, "refId": name}, "definition": definition,
            "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}, "refresh": 2}


dashboard = {
    "title": "Fusebox circuit breakers",
    "uid": "fusebox-breakers",
    "schemaVersion": 39,
    "version": 3,
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
