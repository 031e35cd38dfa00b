#!/usr/bin/env bash
# Installs the system packages SwiftDTM needs, idempotently (Debian, as root).
#   tools/install-deps.sh          what building and running dtmd needs
#   tools/install-deps.sh --test   also what the test suite needs
set -euo pipefail
packages=(liblmdb-dev zlib1g-dev)
if [ "${1:-}" = "--test" ]; then
  # golang-go + golang-google-grpc-dev build the grpc-go branch server offline (GOPATH mode);
  # postgresql runs the private cluster of the PostgreSQL store tests (openssl makes its TLS certificate);
  # chromium renders the admin pages, headless.
  packages+=(python3-venv etcd-server curl golang-go golang-google-grpc-dev postgresql openssl chromium)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
