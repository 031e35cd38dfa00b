#!/usr/bin/env bash
# Builds dtmd (release) and runs it on its embedded defaults: event log in ./data (LMDB),
# gRPC on 36790, HTTP on 36789. Extra arguments go to dtmd (e.g. -c config.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product dtmd
exec .build/release/dtmd "$@"
