#!/usr/bin/env bash
# Installs everything the tests need and runs all of them: the Swift unit and in-process
# integration tests, then the black-box interop tests under Tests/interop (Python grpcio stubs
# built from our proto, against a real dtmd).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
# The barrier tests run on SQLite and on a private PostgreSQL cluster, stopped on exit.
pg_dir=$(mktemp -d /tmp/swiftdtm-pg.XXXXXX)
trap 'tools/private-postgres.sh stop "$pg_dir"' EXIT
SWIFTDTM_TEST_POSTGRES=$(tools/private-postgres.sh start "$pg_dir")
export SWIFTDTM_TEST_POSTGRES
# Only Swift Testing is used; without this flag XCTest also prints "Executed 0 tests".
swift test --disable-xctest
tools/private-postgres.sh stop "$pg_dir"
trap - EXIT
# The black-box tests run the binaries as users run them: release builds. (Debug builds of
# grpc-swift-nio-transport 2.9.2 can trip an internal assertion under load, "Can't close stream
# N, it wasn't open", which release builds compile out.)
for product in dtmd dtmctl trans-service trans-app barrier-transfer workflow-transfer; do swift build -c release --product "$product"; done
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r Tests/interop/requirements.txt
DTMD_BIN="$PWD/.build/release/dtmd" DTMCTL_BIN="$PWD/.build/release/dtmctl" "$VENV/bin/python" -m pytest -q Tests/interop
