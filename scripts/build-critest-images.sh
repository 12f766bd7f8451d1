#!/usr/bin/env bash
# Builds stand-ins for the images cri-tools' critest pulls (the machines reach no registry),
# each behaving as the specs in cri-tools' pkg/validate expect, as OCI archives in
# tests/fixtures/bin/critest-images/, with images.txt naming where each is served
# (`<archive> <repository path:tag>`; tests/critest/registry.py pushes them to a registry on
# the node's loopback that containerd mirrors registry.k8s.io and gcr.io to).
#   e2e-test-images/busybox:1.29-2        busybox, plus pgrep and ipcs -m (Debian's has neither)
#   e2e-test-images/nginx:1.14-2          tools/critest-images/webserver.c on port 80, pid in
#                                         /var/run/nginx.pid, "nginx: master process" argv
#   e2e-test-images/httpd:2.4.39-4        the same server named httpd
#   e2e-test-images/nonewprivs:1.3        setuid-root program printing "Effective uid: N"
#   k8s-staging-cri-tools/hostnet-nginx-amd64:latest   the server on port 12003
#   k8s-staging-cri-tools/test-image-predefined-group:latest   uid 1000 in group 50000
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fixtures/bin/critest-images
mkdir -p "$out"
gcc -static -O2 -Wall -Wextra -o "$out/webserver" tools/critest-images/webserver.c
gcc -static -O2 -Wall -Wextra -o "$out/nonewprivs" tools/critest-images/nonewprivs.c
gcc -static -O2 -Wall -Wextra -o "$out/ipcs" tools/critest-images/ipcs.c
python3 - "$out" <<'PY'
import sys
import tarfile
sys.path.insert(0, "tools/images")
from oci_image import add, add_busybox, build_image

out = sys.argv[1]
webserver = open(out + "/webserver", "rb").read()
nonewprivs = open(out + "/nonewprivs", "rb").read()
ipcs = open(out + "/ipcs", "rb").read()
# busybox-static has no pgrep; critest's specs run `pgrep sleep`.
PGREP = b"""#!/bin/sh
# pgrep PATTERN: the pids of processes whose name contains PATTERN (exit 1 if none).
found=1
for dir in /proc/[0-9]*; do
  read -r name < "$dir/comm" 2>/dev/null || continue
  case "$name" in *"$1"*) echo "${dir#/proc/}"; found=0 ;; esac
done
exit $found
"""
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DIRECTORIES = ("bin", "tmp", "etc", "proc", "sys", "dev", "usr", "usr/sbin", "usr/local", "usr/local/bin",
               "var", "var/run", "run")
# The users and groups of the real busybox image (the RunAsUserName spec runs as "nobody").
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nbin:x:2:2:bin:/bin:/bin/false\n"
          b"sys:x:3:3:sys:/dev:/bin/false\nsync:x:4:100:sync:/bin:/bin/sync\nmail:x:8:8:mail:/var/spool/mail:/bin/false\n"
          b"www-data:x:33:33:www-data:/var/www:/bin/false\noperator:x:37:37:Operator:/var:/bin/false\n"
          b"nobody:x:65534:65534:nobody:/home:/bin/false\n")
GROUP = (b"root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nwheel:x:10:root\nmail:x:8:\n"
         b"www-data:x:33:\noperator:x:37:\nusers:x:100:\nnogroup:x:65534:\n")
images = []


def image(repository, fill, config, **extra):
    archive = repository.replace("/", "_").replace(":", "_") + ".tar"
    extra.setdefault("passwd", PASSWD)
    extra.setdefault("group", GROUP)
    build_image(f"{out}/{archive}", "stand-in/" + repository, fill, {"Env": [PATH], "WorkingDir": "/", **config},
                directories=DIRECTORIES, **extra)
    images.append((archive, repository))


def busybox(layer):
    add_busybox(layer)
    add(layer, "usr/bin/pgrep", PGREP)
    add(layer, "usr/bin/ipcs", ipcs)


def server(path):
    def fill(layer):
        busybox(layer)
        add(layer, path, webserver)
    return fill


def setuid(layer):
    busybox(layer)
    add(layer, "usr/local/bin/nonewprivs", nonewprivs, mode=0o4755)


image("e2e-test-images/busybox:1.29-2", busybox, {"Cmd": ["sh"]})
image("e2e-test-images/nginx:1.14-2", server("usr/sbin/nginx"),
      {"Env": [PATH, "WEB_NAME=nginx", "WEB_PID_FILE=/var/run/nginx.pid"], "Cmd": ["nginx", "-g", "daemon off;"]})
image("e2e-test-images/httpd:2.4.39-4", server("usr/local/bin/httpd-foreground"),
      {"Env": [PATH, "WEB_NAME=httpd"], "Cmd": ["httpd-foreground"]})
image("e2e-test-images/nonewprivs:1.3", setuid, {"Cmd": ["nonewprivs"]})
image("k8s-staging-cri-tools/hostnet-nginx-amd64:latest", server("usr/sbin/nginx"),
      {"Env": [PATH, "WEB_NAME=nginx", "WEB_PORT=12003"], "Cmd": ["nginx", "-g", "daemon off;"]})
image("k8s-staging-cri-tools/test-image-predefined-group:latest", busybox, {"User": "1000", "Cmd": ["sh"]},
      passwd=b"root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/tmp:/bin/sh\n",
      group=b"root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
with open(out + "/images.txt", "w") as listing:
    listing.writelines(f"{archive} {repository}\n" for archive, repository in images)
PY
echo "$out: $(wc -l < "$out/images.txt") images"
