#!/usr/bin/env python3
"""Observability checks against the real binary and real Prometheus tools.

1. `promtool check metrics` on a live scrape of a `fusebox serve` that has seen
   traffic and transitions;
2. `promtool check rules` and `promtool test rules` on the rules file;
3. every PromQL expression of the Grafana dashboard (panels, variables,
   annotations), the rules file, docs/metrics.md and docs/runbook.md parses
   (through promtool) and names only metrics that /metrics exposes (or that a
   recording rule defines), with only labels those metrics have (the fleet
   series from a second sidecar in fleet mode); every metric name the docs
   mention is exposed; the dashboard is in rows with fleet, reload and TTFB
   panels;
4. a real `prometheus` server scraping the sidecar every second sees a breaker
   open and fusebox_transitions_total increase.

Usage: scripts/observability_check.py [path/to/fusebox]
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUSEBOX = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "debug", "fusebox")
RULES = os.path.join(ROOT, "dashboards", "prometheus", "fusebox-rules.yml")
RULE_TESTS = os.path.join(ROOT, "dashboards", "prometheus", "fusebox-rules.test.yml")
DASHBOARD = os.path.join(ROOT, "dashboards", "grafana", "fusebox.json")
PROMQL_DOCS = [os.path.join(ROOT, "docs", name) for name in ("metrics.md", "runbook.md")]
# Labels every scraped series gets from Prometheus, and those histograms add.
TARGET_LABELS = {"instance", "job"}


def doc_expressions(path):
    """The expressions of a document's ```promql blocks: comment lines skipped,
    indented lines joined to the one before."""
    found, inside = [], False
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.strip() == "```promql":
            inside = True
        elif line.strip() == "```":
            inside = False
        elif inside and line.strip() and not line.lstrip().startswith("#"):
            if line.startswith((" ", "\t")) and found:
                found[-1] += " " + line.strip()
            else:
                found.append(line.strip())
    return [(os.path.relpath(path, ROOT), e) for e in found]


def closing(text, start):
    """Index of the parenthesis closing the one at `start`."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return len(text)


def label_problems(expr, labels_of, recorded):
    """Labels an expression uses that its metrics do not have."""
    problems = []
    for name, body in re.findall(r"\b(fusebox_[a-z0-9_]+|process_[a-z0-9_]+)\{([^}]*)\}", expr):
        for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", body):
            if name in labels_of and label not in labels_of[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label}")
    # by/on/without (...) must name labels of the metrics they aggregate or match.
    for clause in re.finditer(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        wanted = [l.strip() for l in clause.group(2).split(",") if l.strip()]
        if clause.group(1) in ("by", "without"):
            after = expr.find("(", clause.end())
            scope = expr[after:closing(expr, after) + 1] if after >= 0 else expr
        else:
            scope = expr
        names = [n for n in re.findall(r"\b(fusebox_[a-z0-9_]+|process_[a-z0-9_]+)", scope) if n in labels_of]
        if not names or any(n in recorded for n in re.findall(r"\b(fusebox:[a-z0-9_:]+)", scope)):
            continue
        have = set().union(*(labels_of[n] for n in names)) | TARGET_LABELS
        problems += [f"{clause.group(1)} ({label}): none of {sorted(set(names))} has it" for label in wanted if label not in have]
    return problems

passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}\n{detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, condition, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def ask(path, lines):
    """Sends request lines on the Unix socket, returns the parsed answers."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(("\n".join(lines) + "\n").encode())
        data = b""
        while data.count(b"\n") < len(lines):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.decode().splitlines()]


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def fleet_scrape(work):
    """/metrics of a sidecar in fleet mode whose PostgreSQL does not answer: its
    fusebox_fleet_* series exist from the start (fusebox_fleet_connected 0), so the
    dashboard's fleet panels are checked against what a fleet sidecar exposes."""
    folder = os.path.join(work, "fleet")
    os.makedirs(folder)
    port = free_port()
    with open(f"{folder}/fusebox.yaml", "w") as f:
        f.write(f"""
socket: {folder}/fusebox.sock
admin_socket: {folder}/fusebox-admin.sock
http: 127.0.0.1:{port}
store: off
instance: obs-fleet
fleet:
  postgres: postgresql://fusebox@127.0.0.1:{free_port()}/fusebox
  name: obs
breakers:
  openai: {{ rate: {{ requests: 600, per: 1m, scope: fleet }} }}
""")
    env = {**os.environ, "FUSEBOX_FLEET_SECRET": "0123456789abcdef0123456789abcdef"}
    sidecar = subprocess.Popen([FUSEBOX, "serve", "--config", f"{folder}/fusebox.yaml"], env=env,
                               stdout=open(f"{folder}/fusebox.log", "w"), stderr=subprocess.STDOUT)
    def metrics():
        text = http_get(f"http://127.0.0.1:{port}/metrics")
        return text if "fusebox_fleet_budget_share{" in text else None
    try:
        return wait_for("the fleet sidecar's metrics", metrics)
    finally:
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=10)


def main():
    work = tempfile.mkdtemp(prefix="fusebox-obs-")
    port = free_port()
    config = f"""
socket: {work}/fusebox.sock
admin_socket: {work}/fusebox-admin.sock
http: 127.0.0.1:{port}
store: off
instance: obs
defaults:
  trip: {{ consecutive_failures: 3 }}
  open: {{ duration: 1s, jitter: 0 }}
breakers:
  openai: {{ max_in_flight: 8, queue: {{ max: 10, timeout: 1s }}, rate: {{ requests: 600, per: 1m }}, tokens: {{ budget: 90000, per: 1m }} }}
  anthropic: {{}}
  # Probed on a port nothing listens on: its closed check fails, so the probe series move.
  ollama: {{ probe: {{ http: {{ url: "http://127.0.0.1:9/health", timeout: 200ms }}, closed_interval: 1s }} }}
chains: {{ llm: [openai, anthropic, ollama] }}
"""
    with open(f"{work}/fusebox.yaml", "w") as f:
        f.write(config)
    log = open(f"{work}/fusebox.log", "w")
    sidecar = subprocess.Popen([FUSEBOX, "serve", "--config", f"{work}/fusebox.yaml"], stdout=log, stderr=subprocess.STDOUT)
    prometheus = None
    try:
        wait_for("the sidecar's HTTP endpoint", lambda: http_get(f"http://127.0.0.1:{port}/readyz"))
        sock = f"{work}/fusebox.sock"
        # Traffic and transitions: trip openai, route around it, let it half-open.
        # First spend openai's token budget: the second call's cost does not fit.
        answers = ask(sock, ['{"op":"acquire","breaker":"openai","cost":60000}'] * 2
                      + ['{"op":"record","breaker":"openai","status":503,"latency_ms":40}'] * 3
                      + ['{"op":"route","chain":"llm"}', '{"op":"acquire","breaker":"openai"}', '{"op":"bogus"}'])
        if answers[1].get("reason") != "tokens":
            check("a token budget refuses what does not fit", False, json.dumps(answers[1]))
        permit = answers[5]["permit"]
        ask(sock, [json.dumps({"op": "report", "permit": permit, "outcome": "success", "latency_ms": 250})])
        wait_for("openai half-open", lambda: '"half_open"' in http_get(f"http://127.0.0.1:{port}/v1/breakers"))
        scrape = http_get(f"http://127.0.0.1:{port}/metrics")
        with open(f"{work}/metrics.txt", "w") as f:
            f.write(scrape)

        # 1. promtool check metrics on the live scrape.
        result = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True, text=True)
        check("promtool check metrics: no complaints", result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(),
              result.stdout + result.stderr)
        check("scrape shows openai half-open and a fallback",
              'fusebox_breaker_state{breaker="openai",state="half_open"} 1' in scrape
              and 'fusebox_fallbacks_total{chain="llm",from="openai",to="anthropic"} 1' in scrape, scrape[:2000])
        check("scrape shows the token budget's refusal and what is left",
              'fusebox_budget_rejections_total{breaker="openai",reason="tokens"} 1' in scrape
              and re.search(r'fusebox_token_budget_available\{breaker="openai"\} [3-8]\d{4}', scrape) is not None
              and 'fusebox_queue_depth{breaker="openai"} 0' in scrape, scrape[:3000])

        # 2. Rules.
        result = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
        check("promtool check rules", result.returncode == 0, result.stdout + result.stderr)
        result = subprocess.run(["promtool", "test", "rules", os.path.basename(RULE_TESTS)], capture_output=True, text=True,
                                cwd=os.path.dirname(RULE_TESTS))
        check("promtool test rules (every alert fires and stays silent as expected)", result.returncode == 0, result.stdout + result.stderr)

        # 3. PromQL drift: names and syntax.
        exposed = set()
        labels_of = {}
        for line in (scrape + "\n" + fleet_scrape(work)).splitlines():
            if line.startswith("# TYPE "):
                name, kind = line.split()[2:4]
                exposed.add(name)
                if kind == "histogram":
                    exposed.update({name + "_bucket", name + "_sum", name + "_count"})
            elif line and not line.startswith("#"):
                series = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
                if series:
                    labels_of.setdefault(series.group(1), set()).update(re.findall(r'([a-zA-Z_]+)="', series.group(2) or ""))
        rules_text = open(RULES).read()
        recorded = set(re.findall(r"record:\s*(\S+)", rules_text))
        expressions = [("rules", e.strip()) for e in re.findall(r"expr:\s*(.+)", rules_text)]
        dashboard = json.load(open(DASHBOARD))
        rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
        check("the dashboard is in rows: overview, breakers, budgets, fleet, probes, process",
              rows == ["Overview", "Breakers", "Budgets and queues", "Fleet", "Probes", "Process and store"], rows)
        wanted = ["fusebox_fleet_connected", "fusebox_fleet_propagation_seconds", "fusebox_config_reloads_total",
                  "fusebox_time_to_first_byte_seconds"]
        shown = json.dumps([t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])])
        check("the dashboard has fleet, reload and time-to-first-byte panels", all(w in shown for w in wanted),
              [w for w in wanted if w not in shown])
        for panel in dashboard["panels"]:
            for t in panel.get("targets", []):
                expressions.append((f"panel {panel['title']}", t["expr"]))
        for variable in dashboard["templating"]["list"]:
            if variable.get("type") == "query":
                inner = re.search(r"label_values\((.*), *\w+\)$", variable["definition"]).group(1)
                expressions.append((f"variable {variable['name']}", inner))
        for annotation in dashboard.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                expressions.append((f"annotation {annotation['name']}", annotation["expr"]))
        for doc in PROMQL_DOCS:
            expressions += doc_expressions(doc)
        unknown = []
        for where, expr in expressions:
            for name in re.findall(r"\b(fusebox[_:][a-z0-9_:]*|process_[a-z0-9_]+)", expr):
                if name not in exposed and name not in recorded:
                    unknown.append(f"{where}: {name}")
            unknown += [f"{where}: {problem}" for problem in label_problems(expr, labels_of, recorded)]
        check(f"{len(expressions)} PromQL expressions (dashboard, rules, docs) name only exposed metrics and labels",
              not unknown, "\n".join(unknown))
        # Every metric the docs name in prose exists too (fleet ones in the fleet sidecar's scrape).
        mentioned = set()
        for doc in [os.path.join(ROOT, "README.md")] + [os.path.join(ROOT, "docs", n) for n in os.listdir(os.path.join(ROOT, "docs"))]:
            mentioned |= {(os.path.relpath(doc, ROOT), n) for n in re.findall(r"\b(fusebox_[a-z0-9_]*[a-z0-9])\b", open(doc).read())}
        renamed = {"fusebox_failure_rate", "fusebox_slow_call_rate"}  # named as renamed, in docs/metrics.md
        not_metrics = {"fusebox_schema", "fusebox_fleet"}  # a PostgreSQL table and the NOTIFY channel (docs/fleet.md)
        # docs/otlp.md names counters as OTLP exports them, without `_total`: those must be exposed with it.
        missing = sorted(f"{doc}: {n}" for doc, n in mentioned
                         if n not in exposed and n not in renamed | not_metrics
                         and not (doc == os.path.join("docs", "otlp.md") and n + "_total" in exposed)
                         and not any(n.startswith(e + "_") for e in exposed))
        check(f"{len(mentioned)} metric names mentioned in the docs are all exposed", not missing, "\n".join(missing))
        concrete = [e.replace("$__rate_interval", "1m").replace("$breaker", ".*").replace("$instance", ".*").replace("$job", ".*")
                    for _, e in expressions]
        syntax = "groups:\n  - name: dashboard\n    rules:\n" + "".join(
            f"      - record: dashboard:expr{i}\n        expr: {json.dumps(e)}\n" for i, e in enumerate(concrete))
        with open(f"{work}/exprs.yml", "w") as f:
            f.write(syntax)
        result = subprocess.run(["promtool", "check", "rules", f"{work}/exprs.yml"], capture_output=True, text=True)
        check("every dashboard and rule expression parses", result.returncode == 0, result.stdout + result.stderr)

        # 4. A real Prometheus server.
        if shutil.which("prometheus"):
            prom_port = free_port()
            with open(f"{work}/prometheus.yml", "w") as f:
                f.write(f"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n"
                        f"scrape_configs:\n  - job_name: fusebox\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
            prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=subprocess.DEVNULL, stderr=open(f"{work}/prometheus.log", "w"))

            def query(q):
                url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
                result = json.loads(http_get(url))["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            total = 'sum(fusebox_transitions_total{breaker="anthropic"})'
            wait_for("Prometheus' first scrape", lambda: query("up{job='fusebox'}") == 1, timeout=60)
            before = query(total) or 0
            ask(sock, ['{"op":"record","breaker":"anthropic","status":500}'] * 3)
            try:
                wait_for("Prometheus to see anthropic open",
                         lambda: query('fusebox_breaker_state{breaker="anthropic",state="open"}') == 1, timeout=30)
                seen_open = True
            except TimeoutError:
                seen_open = False
            after = wait_for("transitions to increase", lambda: (query(total) or 0) > before and query(total), timeout=30)
            check("prometheus saw fusebox_breaker_state{breaker=\"anthropic\",state=\"open\"} == 1", seen_open)
            check(f"prometheus saw fusebox_transitions_total increase ({before:g} -> {after:g})", after > before)
        else:
            check("prometheus server is installed (apt-get install prometheus)", False)
    finally:
        if prometheus:
            prometheus.terminate()
            prometheus.wait()
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"observability: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
