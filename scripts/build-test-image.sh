#!/usr/bin/env bash
# Builds the tiny OCI images the tests and the demo use, no registry needed (one layer each,
# imported with `ctr images import`; for the CRI plugin, `ctr -n k8s.io images import`):
#   tests/fixtures/bin/busybox-image.tar  warden.test/busybox:latest (Debian's static busybox)
#   tests/fixtures/bin/pause-image.tar    warden.test/pause:1 (tools/pause/pause.c, static: the
#                                         pod sandbox image of the CRI tests)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
    apt-get install -y busybox-static >/dev/null
fi
mkdir -p tests/fixtures/bin
gcc -static -O2 -Wall -Wextra -o tests/fixtures/bin/pause tools/pause/pause.c
python3 - tests/fixtures/bin <<'PY'
import sys
sys.path.insert(0, "tools/images")
from oci_image import add, add_busybox, build_image

out_dir = sys.argv[1]

def pause_layer(layer):
    add(layer, "pause", open(out_dir + "/pause", "rb").read())

build_image(out_dir + "/busybox-image.tar", "warden.test/busybox:latest", add_busybox,
            {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"})
build_image(out_dir + "/pause-image.tar", "warden.test/pause:1", pause_layer,
            {"Env": ["PATH=/bin"], "Entrypoint": ["/pause"], "WorkingDir": "/"})
PY
echo "tests/fixtures/bin/busybox-image.tar tests/fixtures/bin/pause-image.tar"
