#!/usr/bin/env bash
# Installs everything the tests need and runs all of them: the Swift unit and in-process
# integration tests, then the black-box interop tests under Tests/interop.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
# Only Swift Testing is used; without this flag XCTest also prints "Executed 0 tests".
swift test --disable-xctest
