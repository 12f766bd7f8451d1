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
exec /usr/bin/python3 - "$here" "$@" <<'PY'
import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tomllib

here = sys.argv[1]
parser = argparse.ArgumentParser(prog="install.sh", description="Install Warden as a containerd runtime handler.")
parser.add_argument("--root", default="/")
parser.add_argument("--from", dest="source")
parser.add_argument("--containerd-config", default="/etc/containerd/config.toml")
parser.add_argument("--handler", default="warden")
parser.add_argument("--bin-dir", default="/usr/local/bin")
parser.add_argument("--warden-config", default="/etc/containerd/warden.toml")
parser.add_argument("--dry-run", action="store_true")
parser.add_argument("--uninstall", action="store_true")
parser.add_argument("--restart-containerd", action="store_true")
parser.add_argument("--sandboxer", choices=["podsandbox", "shim"], default="podsandbox")
parser.add_argument("--containerd-version")
parser.add_argument("--accept-hostnetwork-panic", action="store_true")
args = parser.parse_args(sys.argv[2:])

SHIM = "containerd-shim-warden-v2"
CLI = "warden"  # the operator CLI (status, metrics, doctor, sweep), installed beside the shim when built
# The read-only rootfs of pods containerd 2.x hands over through the Sandbox API (shim-config/
# warden.toml [sandbox] pause_rootfs): the pause binary and the mount points runsc needs.
PAUSE_ROOTFS = "/usr/local/lib/warden/pause-rootfs"
PAUSE_ROOTFS_FILES = ["pause"]
PAUSE_ROOTFS_DIRS = ["proc", "dev", "sys"]
RUNTIME_TYPE = "io.containerd.warden.v2"
BIN_DIR = args.bin_dir
WARDEN_CONFIG = args.warden_config
BEGIN = f"# BEGIN warden runtime handler {args.handler!r} (scripts/install.sh; --uninstall removes it)"
END = f"# END warden runtime handler {args.handler!r}"
# Where CRI's runtime handlers live, by containerd config version.
RUNTIMES = {2: 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes',
            3: 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes',
            4: 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes'}
# containerd releases that panic on a hostNetwork pod of a shim-sandboxed handler, and the
# first that passes such a handler's options through (see --help above).
HOSTNETWORK_PANIC = ((2, 0, 0), (2, 3, 0))
SHIM_OPTIONS_SINCE = (2, 3, 1)


def fail(message):
    print(f"install.sh: {message}; nothing changed", file=sys.stderr)
    sys.exit(2)


def host(path):
    """A host path under --root."""
    return os.path.join(args.root, path.lstrip("/"))


def read(path):
    with open(path, "rb") as file:
        return file.read()


def parse(text, path):
    try:
        return tomllib.loads(text.decode())
    except UnicodeDecodeError as error:
        fail(f"{path} is not UTF-8 text ({error})")
    except tomllib.TOMLDecodeError as error:
        fail(f"{path} is not valid TOML ({error})")


def handler_table(config, version):
    table = config
    for key in ["plugins", "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime",
                "containerd", "runtimes", args.handler]:
        if not isinstance(table, dict) or key not in table:
            return None
        table = table[key]
    return table


def config_version(config, path):
    version = config.get("version", 1)
    if version not in RUNTIMES:
        fail(f"{path} is containerd config version {version}; Warden's handler is written for versions 2 "
             "(containerd 1.6/1.7), 3 (2.x) and 4 (2.3): migrate it with `containerd config migrate`")
    return version


def block(version, options=True):
    table = f"{RUNTIMES[version]}.{args.handler}"
    sandboxer = "  sandboxer = \"shim\"\n" if args.sandboxer == "shim" else ""
    if not options:
        # No options table: containerd 2.0-2.3.0 fail StartContainer of a shim-sandboxed pod
        # whose handler has options of a type other than runc's (PR #12986; fixed by #13360
        # in 2.3.1); Warden then reads its default config path, the one this install writes.
        return f"\n{BEGIN}\n[{table}]\n  runtime_type = \"{RUNTIME_TYPE}\"\n{sandboxer}{END}\n".encode()
    return (f"\n{BEGIN}\n[{table}]\n  runtime_type = \"{RUNTIME_TYPE}\"\n{sandboxer}"
            f"[{table}.options]\n  ConfigPath = \"{WARDEN_CONFIG}\"\n{END}\n").encode()


def containerd_version():
    """(major, minor, patch) of the containerd the config is for: --containerd-version, else
    what `containerd --version` says (on PATH, else under --root); None when unknown."""
    text = args.containerd_version
    if text is None:
        for command in ["containerd", host("/usr/bin/containerd"), host("/usr/local/bin/containerd")]:
            try:
                output = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=10).stdout
                text = output.split()[2]
                break
            except (OSError, subprocess.SubprocessError, IndexError):
                continue
    if text is None:
        return None
    try:
        numbers = text.lstrip("v").split("+")[0].split("-")[0].split("~")[0].split(".")
        return tuple(int(number) for number in (numbers + ["0", "0"])[:3])
    except ValueError:
        fail(f"containerd version {text!r} is not X.Y.Z")


def without_block(text):
    start = text.find(b"\n" + BEGIN.encode())
    if start < 0:
        return None
    end = text.find(END.encode(), start)
    if end < 0:
        fail(f"{args.containerd_config} has the start of Warden's block but not its end ({END!r}); fix it by hand")
    return text[:start] + text[end + len(END) + 1:]


def show_diff(path, before, after):
    sys.stdout.writelines(difflib.unified_diff(
        before.decode().splitlines(keepends=True), after.decode().splitlines(keepends=True),
        fromfile=path, tofile=path + " (after)"))


def default_config():
    """What to start from when there is no containerd config: the version containerd reads."""
    known = containerd_version()
    return b"version = 3\n" if known and known[0] >= 2 else b"version = 2\n"


def write(path, data):
    temporary = path + ".warden-tmp"
    with open(temporary, "wb") as file:
        file.write(data)
    shutil.copymode(path, temporary) if os.path.exists(path) else os.chmod(temporary, 0o644)
    os.replace(temporary, path)


config_path = host(args.containerd_config)
backup_path = config_path + ".warden-backup"
created_path = config_path + ".warden-created"  # there was no config before Warden's
exists = os.path.exists(config_path)
original = read(config_path) if exists else b""
changes = []

if args.uninstall:
    if exists:
        parse(original, config_path)
        stripped = without_block(original)
        if stripped is not None:
            restore = read(backup_path) if os.path.exists(backup_path) else None
            if os.path.exists(created_path) and stripped == read(created_path):
                changes.append(("remove", config_path, None, None))
                changes.append(("remove", created_path, None, None))
            elif restore is not None and restore == stripped:
                changes.append(("config", config_path, original, restore))
            else:
                changes.append(("config", config_path, original, stripped))
    for path in [host(os.path.join(BIN_DIR, SHIM)), host(os.path.join(BIN_DIR, CLI))] + \
            [host(os.path.join(PAUSE_ROOTFS, name)) for name in PAUSE_ROOTFS_FILES]:
        if os.path.exists(path):
            changes.append(("remove", path, None, None))
    if os.path.isdir(host(PAUSE_ROOTFS)):
        changes.append(("rmdir", host(PAUSE_ROOTFS), None, None))
    shipped = os.path.join(here, "..", "shim-config", "warden.toml")
    if os.path.exists(host(WARDEN_CONFIG)) and os.path.exists(shipped) and read(host(WARDEN_CONFIG)) == read(shipped):
        changes.append(("remove", host(WARDEN_CONFIG), None, None))
    elif os.path.exists(host(WARDEN_CONFIG)):
        print(f"install.sh: keeping {host(WARDEN_CONFIG)}: it differs from the shipped one (your edits)")
else:
    source = args.source
    if source is None:
        # The node image's bin/, else the shipped build of a checkout (scripts/build-shim.sh).
        for candidate in [os.path.join(here, "..", "bin"), os.path.join(here, "..", ".build-shim", "release")]:
            if os.path.exists(os.path.join(candidate, SHIM)):
                source = candidate
                break
        else:
            fail(f"no {SHIM} beside this script or in .build-shim/release: build it (scripts/build-shim.sh) or pass --from")
    binary = os.path.join(source, SHIM)
    if not os.access(binary, os.X_OK):
        fail(f"{binary} is not an executable")
    base = original if exists else default_config()
    config = parse(base, config_path)
    version = config_version(config, config_path)
    if args.sandboxer == "shim" and version < 3:
        fail(f"--sandboxer shim needs containerd 2.x (config version 3); {config_path} is version {version}")
    with_options = True
    if args.sandboxer == "shim":
        known = containerd_version()
        if known is None:
            fail("--sandboxer shim: cannot tell which containerd this is (no `containerd --version`); "
                 "pass --containerd-version X.Y.Z")
        named = ".".join(map(str, known))
        if HOSTNETWORK_PANIC[0] <= known < HOSTNETWORK_PANIC[1] and not args.accept_hostnetwork_panic:
            fail(f"--sandboxer shim on containerd {named}: containerd 2.0.0-2.2.x panics (the whole daemon, nil spec "
                 "in core/runtime/v2.NewBundle, fixed by containerd #13131 in 2.3.0) on RunPodSandbox of a hostNetwork "
                 "pod under a shim-sandboxed handler; upgrade containerd to 2.3, use --sandboxer podsandbox, or type "
                 "--accept-hostnetwork-panic if no hostNetwork pod can ever use this handler")
        with_options = known >= SHIM_OPTIONS_SINCE
        if not with_options and WARDEN_CONFIG != "/etc/containerd/warden.toml":
            fail(f"--sandboxer shim on containerd {named} reads /etc/containerd/warden.toml: before 2.3.1 containerd "
                 "cannot pass a ConfigPath to a shim-sandboxed handler (PR #12986; fixed by #13360); drop "
                 "--warden-config or wrap the shim in a runtime_type script that sets WARDEN_CONFIG_PATH (README)")
    existing = handler_table(config, version)
    if existing is None:
        updated = base + (b"" if base.endswith(b"\n") or not base else b"\n") + block(version, with_options)
        # What containerd will read must parse, and mean what we wrote (an inline table or
        # dotted keys elsewhere would make the appended tables a redefinition).
        check = handler_table(parse(updated, config_path + " with Warden's handler added"), version)
        if not check or check.get("runtime_type") != RUNTIME_TYPE or check.get("sandboxer", "podsandbox") != args.sandboxer:
            fail(f"adding the handler to {config_path} does not read back as written")
        changes.append(("config", config_path, original if exists else None, updated))
    elif existing.get("runtime_type") != RUNTIME_TYPE:
        fail(f"{config_path} already has a runtime handler {args.handler!r} of type "
             f"{existing.get('runtime_type')!r}; choose another --handler")
    elif existing.get("sandboxer", "podsandbox") != args.sandboxer:
        fail(f"{config_path}'s handler {args.handler!r} has sandboxer {existing.get('sandboxer', 'podsandbox')!r}, "
             f"not {args.sandboxer!r}: run --uninstall first, then install with the mode you want")
    for name in PAUSE_ROOTFS_FILES:
        shipped_file = os.path.join(source, "pause-rootfs", name)
        installed_file = host(os.path.join(PAUSE_ROOTFS, name))
        if not os.path.exists(shipped_file):
            if args.sandboxer == "shim":
                fail(f"no {shipped_file} (scripts/build-shim.sh builds it): --sandboxer shim runs pods on it")
            continue
        if not os.path.exists(installed_file) or read(installed_file) != read(shipped_file):
            changes.append(("copy", installed_file, shipped_file, None))
            changes += [("mkdir", host(os.path.join(PAUSE_ROOTFS, d)), None, None) for d in PAUSE_ROOTFS_DIRS]
    installed = host(os.path.join(BIN_DIR, SHIM))
    if not os.path.exists(installed) or read(installed) != read(binary):
        changes.append(("copy", installed, binary, None))
    cli = os.path.join(source, CLI)
    if os.access(cli, os.X_OK):
        installed_cli = host(os.path.join(BIN_DIR, CLI))
        if not os.path.exists(installed_cli) or read(installed_cli) != read(cli):
            changes.append(("copy", installed_cli, cli, None))
    shipped = os.path.join(here, "..", "shim-config", "warden.toml")
    if not os.path.exists(shipped):
        shipped = os.path.join(here, "..", "etc", "warden.toml")  # the node image's layout
    if not os.path.exists(host(WARDEN_CONFIG)):
        changes.append(("copy", host(WARDEN_CONFIG), shipped, None))

if not changes:
    print(f"install.sh: nothing to do (Warden is {'not ' if args.uninstall else ''}installed"
          f"{'' if args.uninstall else ' as handler ' + repr(args.handler)})")
    sys.exit(0)

for kind, path, before, after in changes:
    if kind == "config":
        if args.dry_run:
            show_diff(path, before or b"", after)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not args.uninstall and before is not None and not os.path.exists(backup_path):
                shutil.copy2(path, backup_path)
            elif not args.uninstall and before is None:
                write(created_path, base)
            write(path, after)
            if args.uninstall and os.path.exists(backup_path):
                os.remove(backup_path)
            print(f"install.sh: {'restored' if args.uninstall else 'updated'} {path}")
    elif kind == "copy":
        if args.dry_run:
            print(f"would install {before} -> {path}")
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copy2(before, path + ".warden-tmp")
            os.replace(path + ".warden-tmp", path)
            print(f"install.sh: installed {path}")
    elif kind == "mkdir":
        if not args.dry_run:
            os.makedirs(path, exist_ok=True)
    elif kind == "remove":
        if args.dry_run:
            print(f"would remove {path}")
        else:
            os.remove(path)
            print(f"install.sh: removed {path}")
    elif kind == "rmdir":
        if args.dry_run:
            print(f"would remove {path}")
        else:
            for d in PAUSE_ROOTFS_DIRS:
                if os.path.isdir(os.path.join(path, d)) and not os.listdir(os.path.join(path, d)):
                    os.rmdir(os.path.join(path, d))
            if not os.listdir(path):
                os.rmdir(path)
                parent = os.path.dirname(path)
                if os.path.isdir(parent) and not os.listdir(parent):
                    os.rmdir(parent)
            print(f"install.sh: removed {path}")

if args.dry_run:
    sys.exit(0)
if args.restart_containerd:
    result = subprocess.run(["systemctl", "restart", "containerd"], timeout=120)
    sys.exit(result.returncode)
print("install.sh: containerd reads its config at start: restart it (systemctl restart containerd)")
PY
