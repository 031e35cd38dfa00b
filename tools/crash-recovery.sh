#!/usr/bin/env bash
# Long crash-recovery run: dtmd under a load of concurrent sagas and msgs is SIGKILLed N times at
# random moments (default 100) and restarted on the same data; at the end every acknowledged
# transaction must be finished, every branch-call sequence valid, and `dtmctl verify` clean.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
for product in dtmd dtmctl; do swift build -c release --product "$product"; done
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r Tests/interop/requirements.txt
CRASH_ROUNDS=${1:-100} DTMD_BIN="$PWD/.build/release/dtmd" DTMCTL_BIN="$PWD/.build/release/dtmctl" .venv/bin/python -m pytest -q Tests/interop/test_dtmctl.py -k crash_recovery
