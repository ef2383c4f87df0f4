#!/usr/bin/env bash
# The LLM fallback tour: sidecar, three fake providers, an app, load through an
# outage of the primary; prints what users saw and the incident as Fusebox
# analyzed it. Usage: examples/llm-fallback/run.sh [--short]
# Uses .build/debug/fusebox (run `swift build` first) or $FUSEBOX_BINARY.
set -euo pipefail
exec python3 "$(dirname "$0")/demo.py" "$@"
