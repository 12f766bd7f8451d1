#!/usr/bin/env bash
# Regenerates the committed Swift protobuf code:
#   Sources/ContainerdAPI/Generated  (containerd task v2 API, events, runtime options,
#                                     bootstrap v1, cgroups v1/v2 metrics, the sandbox
#                                     API runtime/sandbox/v1 and the CRI PodSandboxConfig)
#   Sources/TTRPC/Generated          (ttrpc request/response envelope, google.rpc.Status)
# The containerd .proto files come from Debian's golang-github-containerd-containerd-dev
# (1.6.20) and golang-github-containerd-cgroups-dev; the sandbox API's (runtime/sandbox/v1,
# types/platform.proto) are copied under protos/ from sid's golang-github-containerd-
# containerd-api-dev 2.1.9 (1.6 has no sandbox API), the CRI subset is written for Warden. gogoproto and containerd fieldpath
# options only steer Go code generation; they are stripped before protoc runs so that
# nothing of them reaches the Swift API. Running this twice yields identical bytes.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
[ -d /usr/share/gocode/src/github.com/containerd/containerd/runtime/v2/task ] || need+=(golang-github-containerd-containerd-dev)
[ -d /usr/share/gocode/src/github.com/containerd/cgroups/stats/v1 ] || need+=(golang-github-containerd-cgroups-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# protoc-gen-swift, built from the same swift-protobuf release the package depends on.
plugin=${PROTOC_GEN_SWIFT:-}
if [ -z "$plugin" ]; then
  version=$(sed -n 's/.*swift-protobuf", exact: "\([0-9.]*\)".*/\1/p' Package.swift)
  src=.build-protoc/swift-protobuf-$version
  if [ ! -x "$src/.build/release/protoc-gen-swift" ]; then
    rm -rf "$src"
    git clone -q https://github.com/apple/swift-protobuf "$src"
    git -C "$src" checkout -q "$version"
    swift build -c release --package-path "$src" --product protoc-gen-swift
  fi
  plugin=$src/.build/release/protoc-gen-swift
fi

gocode=/usr/share/gocode/src/github.com/containerd
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Copy a proto into the staging tree under a short path, without gogoproto/fieldpath.
stage_proto() {
  local from=$1 to=$2
  mkdir -p "$stage/$(dirname "$to")"
  sed -E \
    -e '/^[[:space:]]*import( weak)? "(github.com\/gogo\/protobuf\/)?gogoproto\/gogo.proto";/d' \
    -e '/^[[:space:]]*import( weak)? "github.com\/containerd\/containerd\/protobuf\/plugin\/fieldpath.proto";/d' \
    -e '/^[[:space:]]*option \((gogoproto|containerd\.plugin)\.[a-z_]+\)[^;]*;/d' \
    -e 's/[[:space:]]*\[\((gogoproto|containerd\.plugin)\.[^]]*\]//g' \
    -e 's#"github.com/containerd/containerd/#"containerd/#g' \
    "$from" > "$stage/$to"
  if grep -nE 'gogoproto|containerd\.plugin' "$stage/$to"; then
    echo "generate-protos: option left in $to after stripping" >&2
    exit 1
  fi
}

stage_proto $gocode/containerd/runtime/v2/task/shim.proto containerd/runtime/v2/task/shim.proto
stage_proto $gocode/containerd/api/types/mount.proto containerd/api/types/mount.proto
stage_proto $gocode/containerd/api/types/metrics.proto containerd/api/types/metrics.proto
stage_proto $gocode/containerd/api/types/task/task.proto containerd/api/types/task/task.proto
stage_proto $gocode/containerd/api/events/task.proto containerd/api/events/task.proto
stage_proto $gocode/containerd/api/services/ttrpc/events/v1/events.proto containerd/api/services/ttrpc/events/v1/events.proto
stage_proto $gocode/containerd/pkg/runtimeoptions/v1/api.proto containerd/pkg/runtimeoptions/v1/api.proto
stage_proto $gocode/cgroups/stats/v1/metrics.proto cgroups/stats/v1/metrics.proto
stage_proto $gocode/cgroups/v2/stats/metrics.proto cgroups/v2/stats/metrics.proto
stage_proto protos/containerd/runtime/bootstrap/v1/bootstrap.proto containerd/runtime/bootstrap/v1/bootstrap.proto
stage_proto protos/containerd/runtime/sandbox/v1/sandbox.proto containerd/runtime/sandbox/v1/sandbox.proto
stage_proto protos/containerd/api/types/platform.proto containerd/api/types/platform.proto
stage_proto protos/containerd/api/types/introspection.proto containerd/api/types/introspection.proto
stage_proto protos/k8s/cri/pod_sandbox_config.proto k8s/cri/pod_sandbox_config.proto
stage_proto protos/ttrpc/request.proto ttrpc/request.proto
stage_proto protos/google/rpc/status.proto google/rpc/status.proto

generate() {
  local out=$1; shift
  rm -f "$out"/*.pb.swift
  mkdir -p "$out"
  (cd "$stage" && protoc -I . -I /usr/include \
      --plugin=protoc-gen-swift="$here/$plugin" \
      --swift_out="$here/$out" \
      --swift_opt=Visibility=Public \
      --swift_opt=FileNaming=PathToUnderscores \
      "$@")
}
case "$plugin" in /*) plugin=$(realpath --relative-to="$here" "$plugin") ;; esac

generate Sources/ContainerdAPI/Generated \
  containerd/runtime/v2/task/shim.proto \
  containerd/api/types/mount.proto \
  containerd/api/types/metrics.proto \
  containerd/api/types/task/task.proto \
  containerd/api/events/task.proto \
  containerd/api/services/ttrpc/events/v1/events.proto \
  containerd/pkg/runtimeoptions/v1/api.proto \
  containerd/runtime/bootstrap/v1/bootstrap.proto \
  containerd/runtime/sandbox/v1/sandbox.proto \
  containerd/api/types/platform.proto \
  containerd/api/types/introspection.proto \
  k8s/cri/pod_sandbox_config.proto \
  cgroups/stats/v1/metrics.proto \
  cgroups/v2/stats/metrics.proto
generate Sources/TTRPC/Generated ttrpc/request.proto google/rpc/status.proto

# The CRI client's messages (tools/cri): Python, by Debian's protoc, for Debian's python3-protobuf.
(cd tools/cri && protoc --python_out=. runtime_v1_subset.proto)

echo "generated: tools/cri/runtime_v1_subset_pb2.py, $(ls Sources/ContainerdAPI/Generated/*.pb.swift Sources/TTRPC/Generated/*.pb.swift | wc -l) files"
