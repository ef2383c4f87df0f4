#!/usr/bin/env python3
"""One worker process of the budget tests: for DURATION seconds, asks the
sidecar for a permit (acquire BREAKER, or route CHAIN), calls the provider
stub the permit names, reports the result, and prints what it saw as JSON.

Usage: budget_worker.py SOCKET acquire|acquire-socket|route NAME DURATION INTERVAL PROVIDERS_JSON
(acquire-socket: acquire with the client's fast path off, every call asked)
"""
import json
import sys
import time
import urllib.error
import urllib.request

from fusebox import BreakerOpen, Fusebox


def total(results: list, field: str) -> dict:
    """Sums one field (calls, statuses or refused) over several workers' results."""
    summed: dict = {}
    for result in results:
        for key, count in result[field].items():
            summed[key] = summed.get(key, 0) + count
    return summed


def call(url: str) -> tuple:
    request = urllib.request.Request(url, data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        retry = error.headers.get("Retry-After")
        return error.code, float(retry) * 1000 if retry else None


def main() -> None:
    socket, mode, name, duration, interval, providers = sys.argv[1:7]
    providers = json.loads(providers)
    seen = {"calls": {}, "statuses": {}, "refused": {}}
    deadline = time.monotonic() + float(duration)
    next_at = time.monotonic()
    with Fusebox(socket, timeout=10, on_unavailable="raise", fast_path=mode != "acquire-socket") as fusebox:
        while time.monotonic() < deadline:
            next_at += float(interval)
            try:
                permit = fusebox.route(name) if mode == "route" else fusebox.acquire(name)
            except BreakerOpen as refused:
                reason = refused.reason or "exhausted"
                seen["refused"][reason] = seen["refused"].get(reason, 0) + 1
            else:
                started = time.monotonic()
                status, retry_after_ms = call(providers[permit.breaker])
                seen["calls"][permit.breaker] = seen["calls"].get(permit.breaker, 0) + 1
                seen["statuses"][str(status)] = seen["statuses"].get(str(status), 0) + 1
                fusebox.report(permit, status=status, latency_ms=(time.monotonic() - started) * 1000,
                               retry_after_ms=retry_after_ms)
            time.sleep(max(0.0, next_at - time.monotonic()))  # pacing: the load's rate
        seen["fast_path"] = {"calls": fusebox.stats()["fast_path"]}
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
