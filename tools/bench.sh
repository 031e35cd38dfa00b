#!/usr/bin/env bash
# Builds dtm-bench in release mode and runs it: tools/bench.sh log [options]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product dtm-bench
exec .build/release/dtm-bench "$@"
