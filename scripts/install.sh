#!/usr/bin/env bash
# Installs Warden on a node: the shim binary, its config, and the `warden` runtime handler in
# containerd's config. Idempotent; --dry-run prints what would change; --uninstall reverses it.
#
#   scripts/install.sh [--root DIR] [--from DIR] [--containerd-config PATH] [--handler NAME]
#                      [--sandboxer podsandbox|shim] [--containerd-version X.Y.Z]
#                      [--accept-hostnetwork-panic] [--dry-run] [--uninstall] [--restart-containerd]
#
#   --root DIR               the node's filesystem is under DIR (the DaemonSet mounts the host at
#                            /host); paths written into configs stay host paths. Default /.
#   --from DIR               where containerd-shim-warden-v2 is (default: ../bin beside this
#                            script as in the node image, else scripts/build-shim.sh's build).
#   --containerd-config P    containerd's config (default /etc/containerd/config.toml).
#   --handler NAME           the CRI runtime handler / RuntimeClass handler (default warden).
#   --bin-dir DIR            where the shim goes (default /usr/local/bin; on containerd's PATH).
#   --warden-config PATH     Warden's config, named by the handler's ConfigPath
#                            (default /etc/containerd/warden.toml).
#   --sandboxer MODE         who owns the pod (containerd 2.x only): podsandbox (default) —
#                            containerd runs a pause container as a task of Warden's; shim —
#                            containerd hands the pod to Warden through the Sandbox API: no
#                            pause image, the sandbox runs Warden's own pause rootfs (README,
#                            "Sandbox API"). Changing it: --uninstall, then install again.
#   --containerd-version V   the containerd the config is for (default: `containerd --version`).
#                            What a shim-sandboxed handler may carry depends on it: options
#                            (ConfigPath) from 2.3.1 on; before, containerd fails StartContainer
#                            of such a handler with non-runc options (report: containerd PR
#                            #12986; fix: #13360, released in 2.3.1).
#   --accept-hostnetwork-panic
#                            --sandboxer shim on containerd 2.0.0-2.2.x, whose daemon panics (nil
#                            spec in core/runtime/v2.NewBundle; fixed by containerd #13131 in
#                            2.3.0) on RunPodSandbox of a hostNetwork pod under such a handler:
#                            every pod on the node loses CRI until it restarts. Refused unless
#                            typed; a RuntimeClass that admits no hostNetwork pod is then a must.
#   --restart-containerd     `systemctl restart containerd` afterwards (containerd reads its
#                            config only at start).
#
# Installed: /usr/local/bin/containerd-shim-warden-v2 (containerd finds shims on its PATH),
# /usr/local/lib/warden/pause-rootfs (the static pause binary of Sandbox API pods),
# /etc/containerd/warden.toml (shim-config/warden.toml; an existing one is kept), and a marked
# block appended to containerd's config (config version 2 for containerd 1.6/1.7, 3 for 2.0-2.2,
# 3 or 4 for 2.3: the same tables; as in shim-config/). Before the first change the config is copied to <config>.warden-backup;
# --uninstall removes the block and, when nothing else changed, restores the backup's bytes.
# A config that is not valid TOML, is config version 1, or already has a different handler of
# that name is refused with a message, and nothing is changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# The program is tools/install/warden_install.py (tested by tests/install without a node).
exec /usr/bin/python3 "$here/../tools/install/warden_install.py" "$here" "$@"
