#!/usr/bin/env bash
# Installs everything the tests need and runs all of them: the Swift unit and in-process
# integration tests, then the black-box interop tests under Tests/interop (Python grpcio stubs
# built from our proto, against a real dtmd).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
# Only Swift Testing is used; without this flag XCTest also prints "Executed 0 tests".
swift test --disable-xctest
for product in dtmd dtmctl trans-service trans-app; do swift build --product "$product"; done
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r Tests/interop/requirements.txt
DTMD_BIN="$PWD/.build/debug/dtmd" "$VENV/bin/python" -m pytest -q Tests/interop
