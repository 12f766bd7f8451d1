#!/usr/bin/env bash
# Stages the node installer image (deploy/Containerfile) in .build-node-image/ and builds it
# with docker, podman or buildah when one is installed (tag: $WARDEN_IMAGE, default
# warden/node-installer:dev). Layout inside the image: /warden/{bin,scripts,etc,tools/cri,tools/install}
# (bin/ holds the shim, the CLI and pause-rootfs/).
# The shim is the shipped build (scripts/build-shim.sh: release, -static-executable), so the
# node needs nothing at all from the image's libraries.
#   WARDEN_SHIM_BINARY=PATH   stage this shim instead of building one
#   WARDEN_IMAGE_CONTEXT=DIR  stage here (default .build-node-image)
#   --stage-only              do not build the image
set -euo pipefail
cd "$(dirname "$0")/.."
shim=${WARDEN_SHIM_BINARY:-}
if [ -z "$shim" ]; then
  shim=$(scripts/build-shim.sh)/containerd-shim-warden-v2
fi
context=${WARDEN_IMAGE_CONTEXT:-.build-node-image}
rm -rf "$context"
mkdir -p "$context/warden/bin" "$context/warden/scripts" "$context/warden/etc" "$context/warden/tools/cri"
install -m 0755 "$shim" "$context/warden/bin/containerd-shim-warden-v2"
install -m 0755 "$(dirname "$shim")/warden" "$context/warden/bin/warden"
if [ -e "$(dirname "$shim")/pause-rootfs/pause" ]; then
  # The Sandbox API pods' pause rootfs (install.sh --sandboxer shim installs it from here).
  mkdir -p "$context/warden/bin/pause-rootfs"
  cp -a "$(dirname "$shim")/pause-rootfs/." "$context/warden/bin/pause-rootfs/"
fi
install -m 0755 scripts/install.sh "$context/warden/scripts/"
install -D -m 0755 tools/install/warden_install.py "$context/warden/tools/install/warden_install.py"
install -m 0644 shim-config/warden.toml "$context/warden/etc/"
install -m 0644 tools/cri/runtime_v1_subset.proto tools/cri/runtime_v1_subset_pb2.py "$context/warden/tools/cri/"
install -m 0755 tools/cri/warden_cri.py "$context/warden/tools/cri/"
cp deploy/Containerfile "$context/"
tag=${WARDEN_IMAGE:-warden/node-installer:dev}
if [ "${1:-}" = --stage-only ]; then echo "staged $context"; exit 0; fi
for builder in docker podman buildah; do
  if command -v "$builder" >/dev/null; then
    case $builder in buildah) buildah bud -f "$context/Containerfile" -t "$tag" "$context" ;;
                     *) "$builder" build -f "$context/Containerfile" -t "$tag" "$context" ;; esac
    echo "built $tag with $builder"
    exit 0
  fi
done
echo "staged $context (no docker, podman or buildah here to build $tag)"
