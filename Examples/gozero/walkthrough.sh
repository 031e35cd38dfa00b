#!/usr/bin/env bash
# dtm's go-zero guide, step by step, in Swift:
#   1. start etcd (localhost:2379)
#   2. configure dtmd with the guide's MicroService block and start it: it registers itself in
#      etcd as dtmservice/<lease id> = localhost:36790
#   3. start the trans service: gRPC trans.TransSvc, registered in etcd as trans.rpc/<lease id>
#   4. run the app: a msg transaction TransOut(30, user 1) + TransIn(30, user 2) submitted
#      through etcd://localhost:2379/dtmservice, with the busi server from etcd
# The trans service then logs "transfer out 30 cents from 1" and "transfer in 30 cents to 2".
# Everything runs on 127.0.0.1 and is stopped at the end. BIN_DIR: prebuilt binaries (else builds).
# The guide's ports are the defaults; ETCD_PORT, ETCD_PEER_PORT, DTM_GRPC_PORT, DTM_HTTP_PORT and
# TRANS_PORT move them (the test command passes free ones, so a second run on the machine cannot collide).
set -euo pipefail
export ETCD_PORT=${ETCD_PORT:-2379} ETCD_PEER_PORT=${ETCD_PEER_PORT:-2380}
export DTM_GRPC_PORT=${DTM_GRPC_PORT:-36790} DTM_HTTP_PORT=${DTM_HTTP_PORT:-36789} TRANS_PORT=${TRANS_PORT:-8081}
cd "$(dirname "$0")/../.."
if [ -z "${BIN_DIR:-}" ]; then
  tools/install-deps.sh --test
  swift build --product dtmd && swift build --product trans-service && swift build --product trans-app
  BIN_DIR=.build/debug
fi
command -v etcd >/dev/null || { echo "etcd is not installed: tools/install-deps.sh --test installs etcd-server" >&2; exit 1; }
WORK=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then  # say why: the logs go with the work directory
    for log in "$WORK"/*.log; do [ -f "$log" ] && { echo "== $(basename "$log") (last lines)"; tail -n 30 "$log"; } >&2; done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

etcd_keys() { # prints the values registered under $1/
  local key end
  key=$(printf '%s/' "$1" | base64 -w0); end=$(printf '%s0' "$1" | base64 -w0)
  curl -s -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/range" -d "{\"key\":\"$key\",\"range_end\":\"$end\"}" | grep -o '"value":"[^"]*"' || true
}
wait_for() { # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; exit 1
}

echo "== 1. etcd on localhost:$ETCD_PORT"
etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" >"$WORK/etcd.log" 2>&1 &
pids+=($!)
wait_for "etcd" curl -sf -X POST "http://127.0.0.1:$ETCD_PORT/v3/kv/range" -d '{"key":"AA=="}'

echo "== 2. dtmd with the guide's MicroService block"
cat >"$WORK/dtmd.yml" <<YAML
Store:
  Driver: lmdb
  Path: $WORK/data
GrpcPort: $DTM_GRPC_PORT
HttpPort: $DTM_HTTP_PORT
MicroService:
  Driver: 'dtm-driver-gozero'
  Target: 'etcd://localhost:$ETCD_PORT/dtmservice'
  EndPoint: 'localhost:$DTM_GRPC_PORT'
YAML
cat "$WORK/dtmd.yml"
"$BIN_DIR/dtmd" -c "$WORK/dtmd.yml" >"$WORK/dtmd.log" 2>&1 &
pids+=($!)
wait_for "dtmd to register in etcd" bash -c "$(declare -f etcd_keys); etcd_keys dtmservice | grep -q ."
echo "etcd dtmservice/: $(etcd_keys dtmservice)"

echo "== 3. the trans service"
"$BIN_DIR/trans-service" --etcd "etcd://localhost:$ETCD_PORT/trans.rpc" --listen "127.0.0.1:$TRANS_PORT" >"$WORK/trans.log" 2>&1 &
pids+=($!)
wait_for "trans to register in etcd" bash -c "$(declare -f etcd_keys); etcd_keys trans.rpc | grep -q ."

echo "== 4. the app"
"$BIN_DIR/trans-app" --dtm "etcd://localhost:$ETCD_PORT/dtmservice" --busi "etcd://localhost:$ETCD_PORT/trans.rpc"

wait_for "the trans service to log both branches" bash -c "grep -q 'transfer in 30 cents to 2' '$WORK/trans.log'"
echo "== trans service log"
cat "$WORK/trans.log"
grep -q "transfer out 30 cents from 1" "$WORK/trans.log"
grep -q "transfer in 30 cents to 2" "$WORK/trans.log"
echo "walk-through OK"
