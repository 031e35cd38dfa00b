#!/usr/bin/env bash
# Regenerates the committed Swift code for every .proto under Protos/.
#
# The protoc plugins are built once from the package mirror's grpc-swift-protobuf (which also
# builds swift-protobuf's protoc-gen-swift) into $PLUGIN_DIR; protoc comes from Debian's
# protobuf-compiler. The generated files are committed so a normal build needs neither.
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGIN_DIR=${PLUGIN_DIR:-/tmp/swiftdtm-protoc-plugins}
GRPC_SWIFT_PROTOBUF_VERSION=2.4.1

command -v protoc >/dev/null || apt-get install -y protobuf-compiler
if [ ! -x "$PLUGIN_DIR/.build/release/protoc-gen-swift" ] || [ ! -x "$PLUGIN_DIR/.build/release/protoc-gen-grpc-swift-2" ]; then
  rm -rf "$PLUGIN_DIR"
  git clone -q https://github.com/grpc/grpc-swift-protobuf.git "$PLUGIN_DIR"
  git -C "$PLUGIN_DIR" checkout -q "$GRPC_SWIFT_PROTOBUF_VERSION"
  (cd "$PLUGIN_DIR" && swift build -c release --product protoc-gen-swift && swift build -c release --product protoc-gen-grpc-swift-2)
fi
BIN="$PLUGIN_DIR/.build/release"

# Event schema (messages only).
protoc -I Protos \
  --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
  --swift_out=Sources/Projections/Generated --swift_opt=Visibility=Public,UseAccessLevelOnImports=true,FileNaming=PathToUnderscores \
  Protos/swiftdtm/events/v1/events.proto

# dtm's gRPC service and its workflow callback (the server calls it; an SDK serves it): messages
# and grpc-swift-2 server and client code, shared by the gateway and the client SDK.
mkdir -p Sources/DTMWire/Generated
protoc -I Protos/dtmgimp -I Protos/workflow \
  --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" \
  --swift_out=Sources/DTMWire/Generated --swift_opt=Visibility=Public,UseAccessLevelOnImports=true \
  --grpc-swift-2_out=Sources/DTMWire/Generated --grpc-swift-2_opt=Visibility=Public,UseAccessLevelOnImports=true,Server=true,Client=true \
  Protos/dtmgimp/dtmgimp.proto Protos/workflow/wf.proto

# The go-zero walk-through's trans service.
mkdir -p Examples/gozero/TransProtocol/Generated
protoc -I Examples/gozero/Protos \
  --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" \
  --swift_out=Examples/gozero/TransProtocol/Generated --swift_opt=Visibility=Public,UseAccessLevelOnImports=true \
  --grpc-swift-2_out=Examples/gozero/TransProtocol/Generated --grpc-swift-2_opt=Visibility=Public,UseAccessLevelOnImports=true,Server=true,Client=true \
  Examples/gozero/Protos/trans.proto

# SwiftDTM's admin service; its event types come from the Projections module.
mkdir -p Sources/GrpcGateway/Generated/admin
protoc -I Protos \
  --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" \
  --swift_out=Sources/GrpcGateway/Generated/admin \
  --swift_opt=Visibility=Public,UseAccessLevelOnImports=true,FileNaming=DropPath,ProtoPathModuleMappings=Protos/module-mappings.asciipb \
  --grpc-swift-2_out=Sources/GrpcGateway/Generated/admin \
  --grpc-swift-2_opt=Visibility=Public,UseAccessLevelOnImports=true,Server=true,Client=true,FileNaming=DropPath,ProtoPathModuleMappings=Protos/module-mappings.asciipb \
  Protos/swiftdtm/admin/v1/admin.proto
