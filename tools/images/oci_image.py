"""Tiny single-layer OCI images, built with no registry and no container engine: an OCI
image layout in a tar (what `ctr images import` and skopeo's `oci-archive:` read).

    build_image(out, "name:tag", fill_layer, config)

`fill_layer(layer)` adds files with `add`; `config` is the image config's "config" object
(Env, Entrypoint, Cmd, User, WorkingDir). Every file is owned by root, mtime 0, so the same
input gives the same bytes."""
import hashlib
import io
import json
import subprocess
import tarfile


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


def busybox_applets():
    return subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()


def add_busybox(layer):
    """Debian's static busybox in /bin with a link per applet."""
    with open("/bin/busybox", "rb") as file:
        add(layer, "bin/busybox", file.read())
    for applet in sorted(set(busybox_applets())):
        if applet != "busybox":
            add(layer, "bin/" + applet, kind=tarfile.SYMTYPE, link="busybox")


def build_image(out, name, fill_layer, config, passwd=b"root:x:0:0:root:/:/bin/sh\n", group=None,
                directories=("bin", "tmp", "etc", "proc", "sys", "dev")):
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for directory in directories:
            add(layer, directory, kind=tarfile.DIRTYPE, mode=0o1777 if directory == "tmp" else 0o755)
        add(layer, "etc/passwd", passwd, mode=0o644)
        if group is not None:
            add(layer, "etc/group", group, mode=0o644)
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
