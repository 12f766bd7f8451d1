#!/usr/bin/env bash
# Builds the test fixtures into tests/fixtures/bin: the Go ttrpc interop peer, offline, in
# GOPATH mode from Debian's golang-github-containerd-ttrpc-dev (installed by scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p tests/fixtures/bin
(cd tests/fixtures/ttrpc-interop &&
  GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="${GOCACHE:-/tmp/warden-gocache}" \
    go build -o "$root/tests/fixtures/bin/ttrpc-interop" .)
