#!/usr/bin/env python3
"""scripts/install.sh's program: installs Warden on a node (the shim, its config, the runtime
handler in containerd's config), idempotently; --dry-run shows what would change; --uninstall
reverses it. The options are described in scripts/install.sh, which runs this as
`warden_install.py SCRIPTS_DIR ARGS…` (SCRIPTS_DIR: where the shipped files are found
relative to: ../bin and ../etc in the node image, ../.build-shim and ../shim-config in a
checkout).

Nothing is changed when anything is refused: every check runs before the first write
(`Installer.plan`), and `Installer.apply` then writes what the plan says. Its pure parts (the
block appended to containerd's config, reading containerd's version, what a shim-sandboxed
handler may carry on which release) are tested without a node by tests/install.
"""
import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tomllib

SHIM = "containerd-shim-warden-v2"
CLI = "warden"  # the operator CLI (status, metrics, doctor, sweep), installed beside the shim when built
# The read-only rootfs of pods containerd 2.x hands over through the Sandbox API (shim-config/
# warden.toml [sandbox] pause_rootfs): the pause binary and the mount points runsc needs.
PAUSE_ROOTFS = "/usr/local/lib/warden/pause-rootfs"
PAUSE_ROOTFS_FILES = ["pause"]
PAUSE_ROOTFS_DIRS = ["proc", "dev", "sys"]
RUNTIME_TYPE = "io.containerd.warden.v2"
DEFAULT_WARDEN_CONFIG = "/etc/containerd/warden.toml"
# Where CRI's runtime handlers live, by containerd config version (4: containerd 2.3's
# `config default`, the same tables as 3).
RUNTIMES = {2: 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes',
            3: 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes',
            4: 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes'}
# containerd releases whose daemon panics on a hostNetwork pod of a shim-sandboxed handler (a
# nil spec in core/runtime/v2.NewBundle; fixed by containerd #13131 in 2.3.0), and the first
# release that passes such a handler's non-runc options through (before it StartContainer
# fails: PR #12986's report; fixed by #13360, released in 2.3.1).
HOSTNETWORK_PANIC = ((2, 0, 0), (2, 3, 0))
SHIM_OPTIONS_SINCE = (2, 3, 1)


class InstallError(Exception):
    """A refusal: the message says why; nothing was changed."""


def parse_version(text):
    """(major, minor, patch) from what `containerd --version` or an operator says
    ("v2.1.9", "2.3.4+unknown", "1.6.20~ds1")."""
    numbers = text.lstrip("v").split("+")[0].split("-")[0].split("~")[0].split(".")
    try:
        return tuple(int(number) for number in (numbers + ["0", "0"])[:3])
    except ValueError:
        raise InstallError(f"containerd version {text!r} is not X.Y.Z") from None


def parse_config(text, path):
    try:
        return tomllib.loads(text.decode())
    except UnicodeDecodeError as error:
        raise InstallError(f"{path} is not UTF-8 text ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise InstallError(f"{path} is not valid TOML ({error})") from None


def config_version(config, path):
    version = config.get("version", 1)
    if version not in RUNTIMES:
        raise InstallError(
            f"{path} is containerd config version {version}; Warden's handler is written for versions 2 "
            "(containerd 1.6/1.7), 3 (2.x) and 4 (2.3): migrate it with `containerd config migrate`")
    return version


def handler_table(config, version, handler):
    table = config
    for key in ["plugins", "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime",
                "containerd", "runtimes", handler]:
        if not isinstance(table, dict) or key not in table:
            return None
        table = table[key]
    return table


def markers(handler):
    return (f"# BEGIN warden runtime handler {handler!r} (scripts/install.sh; --uninstall removes it)",
            f"# END warden runtime handler {handler!r}")


def handler_block(version, handler, sandboxer, warden_config, options=True):
    """The marked block appended to containerd's config."""
    begin, end = markers(handler)
    table = f"{RUNTIMES[version]}.{handler}"
    shim_line = "  sandboxer = \"shim\"\n" if sandboxer == "shim" else ""
    head = f"\n{begin}\n[{table}]\n  runtime_type = \"{RUNTIME_TYPE}\"\n{shim_line}"
    if not options:
        # No options table (see SHIM_OPTIONS_SINCE): Warden then reads its default config path.
        return f"{head}{end}\n".encode()
    return f"{head}[{table}.options]\n  ConfigPath = \"{warden_config}\"\n{end}\n".encode()


def without_block(text, handler, path):
    """The config without Warden's block; None when it has none."""
    begin, end = markers(handler)
    start = text.find(b"\n" + begin.encode())
    if start < 0:
        return None
    stop = text.find(end.encode(), start)
    if stop < 0:
        raise InstallError(f"{path} has the start of Warden's block but not its end ({end!r}); fix it by hand")
    return text[:start] + text[stop + len(end) + 1:]


def shim_handler_options(known, accept_hostnetwork_panic, warden_config):
    """Whether a `sandboxer = "shim"` handler for containerd `known` gets its ConfigPath
    options; refuses the releases that cannot run such a handler safely or at all."""
    if known is None:
        raise InstallError("--sandboxer shim: cannot tell which containerd this is (no `containerd --version`); "
                           "pass --containerd-version X.Y.Z")
    named = ".".join(map(str, known))
    if HOSTNETWORK_PANIC[0] <= known < HOSTNETWORK_PANIC[1] and not accept_hostnetwork_panic:
        raise InstallError(
            f"--sandboxer shim on containerd {named}: containerd 2.0.0-2.2.x panics (the whole daemon, nil spec "
            "in core/runtime/v2.NewBundle, fixed by containerd #13131 in 2.3.0) on RunPodSandbox of a hostNetwork "
            "pod under a shim-sandboxed handler; upgrade containerd to 2.3, use --sandboxer podsandbox, or type "
            "--accept-hostnetwork-panic if no hostNetwork pod can ever use this handler")
    with_options = known >= SHIM_OPTIONS_SINCE
    if not with_options and warden_config != DEFAULT_WARDEN_CONFIG:
        raise InstallError(
            f"--sandboxer shim on containerd {named} reads {DEFAULT_WARDEN_CONFIG}: before 2.3.1 containerd "
            "cannot pass a ConfigPath to a shim-sandboxed handler (PR #12986; fixed by #13360); drop "
            "--warden-config or wrap the shim in a runtime_type script that sets WARDEN_CONFIG_PATH (README)")
    return with_options


def show_diff(path, before, after):
    sys.stdout.writelines(difflib.unified_diff(
        before.decode().splitlines(keepends=True), after.decode().splitlines(keepends=True),
        fromfile=path, tofile=path + " (after)"))


def read(path):
    with open(path, "rb") as file:
        return file.read()


def write(path, data):
    temporary = path + ".warden-tmp"
    with open(temporary, "wb") as file:
        file.write(data)
    shutil.copymode(path, temporary) if os.path.exists(path) else os.chmod(temporary, 0o644)
    os.replace(temporary, path)


class Installer:
    def __init__(self, here, args):
        self.here = here
        self.args = args
        self.config_path = self.host(args.containerd_config)
        self.backup_path = self.config_path + ".warden-backup"
        self.created_path = self.config_path + ".warden-created"  # there was no config before Warden's
        self.base = b""  # the config the install starts from (recorded when there was none)

    def host(self, path):
        """A host path under --root."""
        return os.path.join(self.args.root, path.lstrip("/"))

    def containerd_version(self):
        """--containerd-version, else what `containerd --version` says (on PATH, else under
        --root); None when unknown."""
        text = self.args.containerd_version
        if text is None:
            for command in ["containerd", self.host("/usr/bin/containerd"), self.host("/usr/local/bin/containerd")]:
                try:
                    output = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=10).stdout
                    text = output.split()[2]
                    break
                except (OSError, subprocess.SubprocessError, IndexError):
                    continue
        return None if text is None else parse_version(text)

    def default_config(self):
        """What to start from when there is no containerd config: the version containerd reads."""
        known = self.containerd_version()
        return b"version = 3\n" if known and known[0] >= 2 else b"version = 2\n"

    def shipped_warden_config(self):
        shipped = os.path.join(self.here, "..", "shim-config", "warden.toml")
        return shipped if os.path.exists(shipped) else os.path.join(self.here, "..", "etc", "warden.toml")  # node image

    def plan(self):
        """Every change, as (kind, path, before, after); raises InstallError before any."""
        exists = os.path.exists(self.config_path)
        original = read(self.config_path) if exists else b""
        return self.plan_uninstall(exists, original) if self.args.uninstall else self.plan_install(exists, original)

    def plan_uninstall(self, exists, original):
        args, changes = self.args, []
        if exists:
            parse_config(original, self.config_path)
            stripped = without_block(original, args.handler, args.containerd_config)
            if stripped is not None:
                restore = read(self.backup_path) if os.path.exists(self.backup_path) else None
                if os.path.exists(self.created_path) and stripped == read(self.created_path):
                    changes.append(("remove", self.config_path, None, None))
                    changes.append(("remove", self.created_path, None, None))
                elif restore is not None and restore == stripped:
                    changes.append(("config", self.config_path, original, restore))
                else:
                    changes.append(("config", self.config_path, original, stripped))
        for path in [self.host(os.path.join(args.bin_dir, SHIM)), self.host(os.path.join(args.bin_dir, CLI))] + \
                [self.host(os.path.join(PAUSE_ROOTFS, name)) for name in PAUSE_ROOTFS_FILES]:
            if os.path.exists(path):
                changes.append(("remove", path, None, None))
        if os.path.isdir(self.host(PAUSE_ROOTFS)):
            changes.append(("rmdir", self.host(PAUSE_ROOTFS), None, None))
        installed_config = self.host(args.warden_config)
        shipped = os.path.join(self.here, "..", "shim-config", "warden.toml")
        if os.path.exists(installed_config) and os.path.exists(shipped) and read(installed_config) == read(shipped):
            changes.append(("remove", installed_config, None, None))
        elif os.path.exists(installed_config):
            print(f"install.sh: keeping {installed_config}: it differs from the shipped one (your edits)")
        return changes

    def find_source(self):
        source = self.args.source
        if source is None:
            # The node image's bin/, else the shipped build of a checkout (scripts/build-shim.sh).
            for candidate in [os.path.join(self.here, "..", "bin"), os.path.join(self.here, "..", ".build-shim", "release")]:
                if os.path.exists(os.path.join(candidate, SHIM)):
                    return candidate
            raise InstallError(f"no {SHIM} beside this script or in .build-shim/release: build it "
                               "(scripts/build-shim.sh) or pass --from")
        return source

    def plan_install(self, exists, original):
        args, changes = self.args, []
        source = self.find_source()
        binary = os.path.join(source, SHIM)
        if not os.access(binary, os.X_OK):
            raise InstallError(f"{binary} is not an executable")
        self.base = original if exists else self.default_config()
        config = parse_config(self.base, self.config_path)
        version = config_version(config, self.config_path)
        if args.sandboxer == "shim" and version < 3:
            raise InstallError(f"--sandboxer shim needs containerd 2.x (config version 3); {self.config_path} is version {version}")
        with_options = True
        if args.sandboxer == "shim":
            with_options = shim_handler_options(self.containerd_version(), args.accept_hostnetwork_panic, args.warden_config)
        existing = handler_table(config, version, args.handler)
        if existing is None:
            block = handler_block(version, args.handler, args.sandboxer, args.warden_config, with_options)
            updated = self.base + (b"" if self.base.endswith(b"\n") or not self.base else b"\n") + block
            # What containerd will read must parse, and mean what we wrote (an inline table or
            # dotted keys elsewhere would make the appended tables a redefinition).
            check = handler_table(parse_config(updated, self.config_path + " with Warden's handler added"), version, args.handler)
            if not check or check.get("runtime_type") != RUNTIME_TYPE or check.get("sandboxer", "podsandbox") != args.sandboxer:
                raise InstallError(f"adding the handler to {self.config_path} does not read back as written")
            changes.append(("config", self.config_path, original if exists else None, updated))
        elif existing.get("runtime_type") != RUNTIME_TYPE:
            raise InstallError(f"{self.config_path} already has a runtime handler {args.handler!r} of type "
                               f"{existing.get('runtime_type')!r}; choose another --handler")
        elif existing.get("sandboxer", "podsandbox") != args.sandboxer:
            raise InstallError(f"{self.config_path}'s handler {args.handler!r} has sandboxer "
                               f"{existing.get('sandboxer', 'podsandbox')!r}, not {args.sandboxer!r}: run --uninstall "
                               "first, then install with the mode you want")
        for name in PAUSE_ROOTFS_FILES:
            shipped_file = os.path.join(source, "pause-rootfs", name)
            installed_file = self.host(os.path.join(PAUSE_ROOTFS, name))
            if not os.path.exists(shipped_file):
                if args.sandboxer == "shim":
                    raise InstallError(f"no {shipped_file} (scripts/build-shim.sh builds it): --sandboxer shim runs pods on it")
                continue
            if not os.path.exists(installed_file) or read(installed_file) != read(shipped_file):
                changes.append(("copy", installed_file, shipped_file, None))
                changes += [("mkdir", self.host(os.path.join(PAUSE_ROOTFS, d)), None, None) for d in PAUSE_ROOTFS_DIRS]
        installed = self.host(os.path.join(args.bin_dir, SHIM))
        if not os.path.exists(installed) or read(installed) != read(binary):
            changes.append(("copy", installed, binary, None))
        cli = os.path.join(source, CLI)
        if os.access(cli, os.X_OK):
            installed_cli = self.host(os.path.join(args.bin_dir, CLI))
            if not os.path.exists(installed_cli) or read(installed_cli) != read(cli):
                changes.append(("copy", installed_cli, cli, None))
        if not os.path.exists(self.host(args.warden_config)):
            changes.append(("copy", self.host(args.warden_config), self.shipped_warden_config(), None))
        return changes

    def apply(self, changes):
        args = self.args
        for kind, path, before, after in changes:
            if kind == "config":
                if args.dry_run:
                    show_diff(path, before or b"", after)
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if not args.uninstall and before is not None and not os.path.exists(self.backup_path):
                    shutil.copy2(path, self.backup_path)
                elif not args.uninstall and before is None:
                    write(self.created_path, self.base)
                write(path, after)
                if args.uninstall and os.path.exists(self.backup_path):
                    os.remove(self.backup_path)
                print(f"install.sh: {'restored' if args.uninstall else 'updated'} {path}")
            elif kind == "copy":
                if args.dry_run:
                    print(f"would install {before} -> {path}")
                    continue
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
                    continue
                os.remove(path)
                print(f"install.sh: removed {path}")
            elif kind == "rmdir":
                if args.dry_run:
                    print(f"would remove {path}")
                    continue
                for d in PAUSE_ROOTFS_DIRS:
                    if os.path.isdir(os.path.join(path, d)) and not os.listdir(os.path.join(path, d)):
                        os.rmdir(os.path.join(path, d))
                if not os.listdir(path):
                    os.rmdir(path)
                    parent = os.path.dirname(path)
                    if os.path.isdir(parent) and not os.listdir(parent):
                        os.rmdir(parent)
                print(f"install.sh: removed {path}")


def parser():
    parser = argparse.ArgumentParser(prog="install.sh", description="Install Warden as a containerd runtime handler.")
    parser.add_argument("--root", default="/")
    parser.add_argument("--from", dest="source")
    parser.add_argument("--containerd-config", default="/etc/containerd/config.toml")
    parser.add_argument("--handler", default="warden")
    parser.add_argument("--bin-dir", default="/usr/local/bin")
    parser.add_argument("--warden-config", default=DEFAULT_WARDEN_CONFIG)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--uninstall", action="store_true")
    parser.add_argument("--restart-containerd", action="store_true")
    parser.add_argument("--sandboxer", choices=["podsandbox", "shim"], default="podsandbox")
    parser.add_argument("--containerd-version")
    parser.add_argument("--accept-hostnetwork-panic", action="store_true")
    return parser


def main(argv):
    """argv: SCRIPTS_DIR, then install.sh's arguments. 0 done, 2 refused (nothing changed)."""
    here, args = argv[0], parser().parse_args(argv[1:])
    installer = Installer(here, args)
    try:
        changes = installer.plan()
    except InstallError as error:
        print(f"install.sh: {error}; nothing changed", file=sys.stderr)
        return 2
    if not changes:
        print(f"install.sh: nothing to do (Warden is {'not ' if args.uninstall else ''}installed"
              f"{'' if args.uninstall else ' as handler ' + repr(args.handler)})")
        return 0
    installer.apply(changes)
    if args.dry_run:
        return 0
    if args.restart_containerd:
        return subprocess.run(["systemctl", "restart", "containerd"], timeout=120).returncode
    print("install.sh: containerd reads its config at start: restart it (systemctl restart containerd)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
