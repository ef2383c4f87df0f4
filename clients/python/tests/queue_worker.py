#!/usr/bin/env python3
"""One worker process of the queue test: for DURATION seconds, a client with
every default (2 s timeout, fail-open) acquires BREAKER and calls the slow
provider stub with whatever permit it gets, as an app would, then prints what
it saw as JSON: calls made with a real permit, calls made without one
(fail-open), refusals by reason, and the client's stats().

Usage: queue_worker.py SOCKET BREAKER DURATION URL
"""
import json
import sys
import time
import urllib.request

from fusebox import BreakerOpen, Fusebox


def main() -> None:
    socket, breaker, duration, url = sys.argv[1:5]
    seen = {"permitted": 0, "without_permit": 0, "refused": {}}
    deadline = time.monotonic() + float(duration)
    with Fusebox(socket) as fusebox:
        while time.monotonic() < deadline:
            try:
                permit = fusebox.acquire(breaker)
            except BreakerOpen as refused:
                reason = refused.reason or "none"
                seen["refused"][reason] = seen["refused"].get(reason, 0) + 1
                time.sleep(0.05)  # pacing: a refused worker backs off
                continue
            seen["without_permit" if permit.degraded else "permitted"] += 1
            with urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=10) as response:
                status = response.status
            fusebox.report(permit, status=status)
        seen["stats"] = fusebox.stats()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
