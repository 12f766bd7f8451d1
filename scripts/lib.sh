# Shell functions shared by the scripts (sourced, not run): installing Debian packages that are
# missing, and a private containerd (its own root, state, socket and config under a dir),
# started and stopped, with what it left killed by PID.

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
# containerd_pid and returns once it has booted. The containerd (and the runc shim it finds
# next on its PATH) is WARDEN_CONTAINERD_DIR's (a release set's, scripts/releases.sh), else
# /usr/bin's.
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
  local containerd_dir=${WARDEN_CONTAINERD_DIR:-/usr/bin}
  PATH="$bin:$containerd_dir:$PATH" "$containerd_dir/containerd" --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  containerd_pid=$!
  for _ in $(seq 100); do grep -q "successfully booted" "$dir/containerd.log" && break; sleep 0.1; done
}

# kill_processes_naming DIR [SPARE_PID]: SIGCONT then SIGKILL, by PID, to every process whose
# command line names DIR (shims, sandboxes, gofers of a run), except SPARE_PID.
kill_processes_naming() {
  local dir=$1 spare=${2:-} d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$spare" ] && continue
    if tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q -- "$dir"; then
      kill -CONT "$pid" 2>/dev/null
      kill -9 "$pid" 2>/dev/null
    fi
  done
  return 0
}

# private_namespace DIR: the containerd namespace a run under DIR uses (ctr -n). The cgroups
# runsc makes for its containers (/<namespace>/<id>) are then the run's alone.
private_namespace() {
  basename "$1"
}

# remove_cgroups_under NAME: every cgroup under /NAME in each hierarchy, deepest first, what is
# still in one SIGKILLed by PID first (only a run's own containers are there), then NAME itself.
remove_cgroups_under() {
  local name=$1 mount cg pid
  for mount in $(awk '$4 == "/" && / - cgroup2? / {print $5}' /proc/self/mountinfo); do
    [ -d "$mount/$name" ] || continue
    find "$mount/$name" -depth -type d | while read -r cg; do
      for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
      for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; [ -d "$cg" ] || break; sleep 0.1; done
    done
  done
  return 0
}

# stop_private_containerd DIR: ends what start_private_containerd DIR began: every task
# SIGKILLed and removed, every container removed (each ctr call bounded at 30 s), containerd
# stopped by PID, what still names DIR killed by PID, mounts under DIR unmounted, the run's
# cgroups removed. DIR stays (the caller may want containerd.log); clears containerd_pid.
stop_private_containerd() {
  local dir=$1 ctr="timeout 30 ctr -a $1/c.sock -n $(private_namespace "$1")" id
  if [ -n "${containerd_pid:-}" ]; then
    for id in $($ctr task ls -q 2>/dev/null); do $ctr task kill -s SIGKILL "$id" >/dev/null 2>&1; done
    sleep 1
    for id in $($ctr task ls -q 2>/dev/null); do $ctr task rm -f "$id" >/dev/null 2>&1; done
    for id in $($ctr containers ls -q 2>/dev/null); do $ctr containers rm "$id" >/dev/null 2>&1; done
    kill "$containerd_pid" 2>/dev/null
    wait "$containerd_pid" 2>/dev/null
    containerd_pid=""
  fi
  kill_processes_naming "$dir"
  grep " $dir" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  remove_cgroups_under "$(private_namespace "$dir")"
  return 0
}
