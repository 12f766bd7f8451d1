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
import hashlib, io, json, subprocess, sys, tarfile, time

out_dir = sys.argv[1]
busybox = open("/bin/busybox", "rb").read()
applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()

def add(tar, name, data=None, mode=0o755, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = mode
    info.type = kind
    info.linkname = link
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)

def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()

def build_image(out, name, fill_layer, config):
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for directory in ["bin", "tmp", "etc", "proc", "sys", "dev"]:
            add(layer, directory, kind=tarfile.DIRTYPE, mode=0o1777 if directory == "tmp" else 0o755)
        add(layer, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\n", mode=0o644)
        fill_layer(layer)
    layer_bytes = layer_buffer.getvalue()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [digest(layer_bytes)]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer_bytes), "size": len(layer_bytes)}],
    }, sort_keys=True).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }, sort_keys=True).encode()
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as image:
        add(image, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), mode=0o644)
        add(image, "index.json", index, mode=0o644)
        add(image, "blobs", kind=tarfile.DIRTYPE)
        add(image, "blobs/sha256", kind=tarfile.DIRTYPE)
        for blob in [layer_bytes, config, manifest]:
            add(image, "blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob, mode=0o644)

def busybox_layer(layer):
    add(layer, "bin/busybox", busybox)
    for applet in sorted(set(applets)):
        if applet != "busybox":
            add(layer, "bin/" + applet, kind=tarfile.SYMTYPE, link="busybox")

def pause_layer(layer):
    add(layer, "pause", open(out_dir + "/pause", "rb").read())

build_image(out_dir + "/busybox-image.tar", "warden.test/busybox:latest", busybox_layer,
            {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"})
build_image(out_dir + "/pause-image.tar", "warden.test/pause:1", pause_layer,
            {"Env": ["PATH=/bin"], "Entrypoint": ["/pause"], "WorkingDir": "/"})
PY
echo "tests/fixtures/bin/busybox-image.tar tests/fixtures/bin/pause-image.tar"
