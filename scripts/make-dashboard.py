#!/usr/bin/env python3
"""Writes dashboards/grafana/fusebox.json. The dashboard is generated so its
panels stay uniform; edit this file and run it, then commit both."""
import json
import pathlib

B = 'breaker=~"$breaker"'
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


state_expr = (f'sum by (breaker) (fusebox_breaker_state{{{B},state=~"open|forced_open"}}) * 2 '
              f'+ sum by (breaker) (fusebox_breaker_state{{{B},state="half_open"}})')
panels = [
    panel(1, "Breaker state", "state-timeline", [(state_expr, "{{breaker}}")], 0, 0, w=24, h=7, extra={
        "fieldConfig": {"defaults": {
            "mappings": [{"type": "value", "options": {
                "0": {"text": "closed", "color": "green"},
                "1": {"text": "half-open", "color": "yellow"},
                "2": {"text": "open", "color": "red"}}}],
            "color": {"mode": "thresholds"},
            "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}}}}),
    panel(2, "Calls by outcome", "timeseries",
          [(f'sum by (breaker, outcome) (rate(fusebox_calls_total{{{B}}}[{R}]))', "{{breaker}} {{outcome}}")], 0, 7, unit="reqps"),
    panel(3, "Failure and slow-call rate (trip at 0.5 by default)", "timeseries",
          [(f'fusebox_failure_rate{{{B}}}', "{{breaker}} failure"),
           (f'fusebox_slow_call_rate{{{B}}}', "{{breaker}} slow")], 12, 7, unit="percentunit", extra={
              "fieldConfig": {"defaults": {"unit": "percentunit", "custom": {"thresholdsStyle": {"mode": "line"}},
                                           "thresholds": {"mode": "absolute", "steps": [
                                               {"color": "green", "value": None}, {"color": "red", "value": 0.5}]}}}}),
    panel(4, "Rejected acquires", "timeseries",
          [(f'sum by (breaker) (rate(fusebox_not_permitted_total{{{B}}}[{R}]))', "{{breaker}}")], 0, 15, unit="reqps"),
    panel(5, "Fallbacks per chain", "timeseries",
          [(f'sum by (chain, from, to) (rate(fusebox_fallbacks_total[{R}]))', "{{chain}}: {{from}} → {{to}}"),
           (f'sum by (chain) (rate(fusebox_route_exhausted_total[{R}]))', "{{chain}}: nowhere to go")], 12, 15, unit="reqps"),
    panel(6, "Permits", "timeseries",
          [(f'sum by (breaker) (fusebox_permits_in_flight{{{B}}})', "{{breaker}} in flight"),
           (f'sum by (breaker) (rate(fusebox_permits_expired_total{{{B}}}[{R}]))', "{{breaker}} expired/s"),
           (f'sum by (breaker) (rate(fusebox_permits_abandoned_total{{{B}}}[{R}]))', "{{breaker}} abandoned/s")], 0, 23),
    panel(7, "Call duration p50 / p99", "timeseries",
          [(f'histogram_quantile(0.5, sum by (le, breaker) (rate(fusebox_call_duration_seconds_bucket{{{B}}}[{R}])))', "{{breaker}} p50"),
           (f'histogram_quantile(0.99, sum by (le, breaker) (rate(fusebox_call_duration_seconds_bucket{{{B}}}[{R}])))', "{{breaker}} p99")],
          12, 23, unit="s"),
    panel(8, "Store health", "timeseries",
          [("fusebox_store_healthy", "healthy"),
           ("fusebox_store_queue_depth", "queued rows"),
           (f'rate(fusebox_store_errors_total[{R}])', "errors/s"),
           (f'rate(fusebox_store_dropped_total[{R}])', "dropped rows/s")], 0, 31),
    panel(9, "Clients and protocol errors", "timeseries",
          [("fusebox_clients_connected", "clients"),
           (f'sum by (code) (rate(fusebox_protocol_errors_total[{R}]))', "error {{code}}")], 12, 31),
    panel(10, "Budget rejections (concurrency, rate, tokens)", "timeseries",
          [(f'sum by (breaker, reason) (rate(fusebox_budget_rejections_total{{{B}}}[{R}]))', "{{breaker}} {{reason}}")],
          0, 39, unit="reqps"),
    panel(11, "Queue: waiting and p99 wait", "timeseries",
          [(f'sum by (breaker) (fusebox_queue_depth{{{B}}})', "{{breaker}} waiting"),
           (f'histogram_quantile(0.99, sum by (le, breaker) (rate(fusebox_queue_wait_seconds_bucket{{{B}}}[{R}])))', "{{breaker}} p99 wait (s)")],
          12, 39),
    panel(12, "Budget left (requests and tokens available now)", "timeseries",
          [(f'fusebox_rate_tokens_available{{{B}}}', "{{breaker}} requests"),
           (f'fusebox_token_budget_available{{{B}}}', "{{breaker}} tokens")], 0, 47, w=24),
]

dashboard = {
    "title": "Fusebox circuit breakers",
    "uid": "fusebox-breakers",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "time": {"from": "now-6h", "to": "now"},
    "refresh": "30s",
    "tags": ["fusebox", "circuit-breaker"],
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        {"name": "breaker", "type": "query", "label": "Breaker",
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(fusebox_breaker_state, breaker)", "refId": "breakers"},
         "definition": "label_values(fusebox_breaker_state, breaker)",
         "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}, "refresh": 2},
    ]},
    "panels": panels,
}

out = pathlib.Path(__file__).resolve().parent.parent / "dashboards" / "grafana" / "fusebox.json"
out.write_text(json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n")
print(f"wrote {out}")
