# Shell functions shared by the scripts (sourced, not run): installing Debian packages that are
# missing, and a private containerd (its own root, state, socket and config under a dir).

# ensure_packages PKG…: apt-get installs those not installed yet (progress on stderr).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# start_private_containerd DIR BIN: writes DIR/config.toml (socket DIR/c.sock, CRI off) and starts
# containerd with BIN first on its PATH (where the shim is), output in DIR/containerd.log; sets
# containerd_pid and returns once it has booted.
start_private_containerd() {
  local dir=$1 bin=$2
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$dir/c.sock"
TOML
  PATH="$bin:$PATH" containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  containerd_pid=$!
  for _ in $(seq 100); do grep -q "successfully booted" "$dir/containerd.log" && break; sleep 0.1; done
}
