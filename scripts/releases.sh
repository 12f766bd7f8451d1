#!/usr/bin/env bash
# Release sets: the containerd and runsc the suites and the demo run against.
#
#   scripts/releases.sh SET          fetch (or reuse) the set, check it, print what it is
#   scripts/releases.sh SET --env    the same, then shell assignments to eval:
#                                    WARDEN_RELEASE_SET, WARDEN_CONTAINERD_DIR, WARDEN_RUNSC,
#                                    WARDEN_CONTAINERD_VERSION, WARDEN_RUNSC_VERSION
#
# Sets:
#   current   containerd 2.x (Debian sid, the newest 2.*) + runsc 2024 (bookworm-backports)
#   lts       containerd 1.7 (Debian trixie)               + runsc 2024 (bookworm-backports)
#   bookworm  the machine's own containerd 1.6 + runsc 2022 (Debian 12, installed by apt)
#   next      containerd 2.3 (the current upstream line; Debian has none: the build in
#             ../shared/tools/containerd-2.3.4, or WARDEN_CONTAINERD_NEXT_DIR) + runsc 2024.
#             Where neither exists the set is not available: exit 3, and the suites report it
#             as not run, never as passed.
#
# The newer packages come through apt's own client with a private configuration (a sources
# list, lists and cache dirs under WARDEN_RELEASE_CACHE, default /var/cache/warden-releases),
# never through the machine's sources: adding trixie or sid there would mix releases on the
# next upgrade. `apt-get download` then `dpkg -x`; nothing is built. Each binary is static Go
# (or needs only glibc >= 2.34) and runs on Debian 12 as it is. sid moves, so the exact
# versions are printed and recorded with every result.
set -euo pipefail

set_name=${1:-}
mode=${2:-}
case "$set_name" in
  current|lts|bookworm|next) ;;
  *) echo "usage: scripts/releases.sh current|lts|bookworm|next [--env]" >&2; exit 2 ;;
esac
case "$mode" in ""|--env) ;; *) echo "releases.sh: unknown option '$mode' (only --env)" >&2; exit 2 ;; esac

cache=${WARDEN_RELEASE_CACHE:-/var/cache/warden-releases}
say() { echo "$@" >&2; }

if [ "$set_name" = bookworm ]; then
  root=$(cd "$(dirname "$0")/.." && pwd)
  . "$root/scripts/lib.sh"
  ensure_packages containerd runsc
  containerd_dir=/usr/bin
  runsc=/usr/bin/runsc
  containerd_version=$(dpkg-query -W -f='${Version}' containerd)
  runsc_version=$(dpkg-query -W -f='${Version}' runsc)
else
  apt_dir=$cache/apt
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$cache/unpacked"
  cat > "$apt_dir/sources.list" <<'LIST'
deb http://deb.debian.org/debian sid main
deb http://deb.debian.org/debian trixie main
deb http://deb.debian.org/debian-security trixie-security main
deb http://deb.debian.org/debian bookworm-backports main
LIST
  apt_options=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root -o Debug::NoLocking=1)

  # The lists are refreshed when older than 6 hours. Without the network, a set unpacked
  # before is used as it is (the versions it prints say which).
  stamp=$apt_dir/updated
  if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +360)" ]; then
    if apt-get "${apt_options[@]}" -qq update >"$apt_dir/update.log" 2>&1; then
      touch "$stamp"
    elif [ -e "$stamp" ]; then
      say "releases.sh: apt update failed (see $apt_dir/update.log); using the lists of $(date -r "$stamp")"
    else
      say "releases.sh: apt update of the private sources failed:"; cat "$apt_dir/update.log" >&2; exit 1
    fi
  fi

  # newest PACKAGE PATTERN [SUITE]: the highest version of PACKAGE matching the shell PATTERN,
  # among the versions the private lists carry (only SUITE's, if given).
  newest() {
    local package=$1 pattern=$2 suite=${3:-} version best=""
    while read -r version; do
      # shellcheck disable=SC2053
      [[ $version == $pattern ]] || continue
      if [ -z "$best" ] || dpkg --compare-versions "$version" gt "$best"; then best=$version; fi
    done < <(apt-cache "${apt_options[@]}" madison "$package" | awk -F'|' -v suite="$suite" \
      'suite == "" || $3 ~ (" " suite "/") { gsub(/ /, "", $2); print $2 }')
    [ -n "$best" ] || { say "releases.sh: no $package $pattern ${suite:+in $suite }in the private lists"; return 1; }
    echo "$best"
  }

  # unpack PACKAGE VERSION: the package's files under $cache/unpacked/PACKAGE_VERSION (reused),
  # printed.
  unpack() {
    local package=$1 version=$2 target deb
    target=$cache/unpacked/${package}_${version//[:~+]/_}
    if [ ! -e "$target/.complete" ]; then
      rm -rf "$target" "$cache/download"
      mkdir -p "$cache/download"
      (cd "$cache/download" && apt-get "${apt_options[@]}" -qq download "$package=$version" >&2)
      deb=$(ls "$cache/download"/*.deb)
      dpkg -x "$deb" "$target"
      rm -rf "$cache/download"
      touch "$target/.complete"
    fi
    echo "$target"
  }

  runsc_version=$(newest runsc '0.0~2024*' bookworm-backports)
  case "$set_name" in
    current) containerd_version=$(newest containerd '2.*' sid) ;;
    lts) containerd_version=$(newest containerd '1.7.*' trixie) ;;
    next)
      root=$(cd "$(dirname "$0")/.." && pwd)
      containerd_dir=${WARDEN_CONTAINERD_NEXT_DIR:-}
      if [ -z "$containerd_dir" ]; then
        containerd_dir=$(ls -d "$root"/../shared/tools/containerd-2.3.* 2>/dev/null | sort -V | tail -n 1 || true)
      fi
      if [ -z "$containerd_dir" ] || [ ! -x "$containerd_dir/containerd" ]; then
        say "releases.sh: next: NOT AVAILABLE: no containerd 2.3 build (../shared/tools/containerd-2.3.*/ or WARDEN_CONTAINERD_NEXT_DIR=DIR holding containerd, ctr, containerd-shim-runc-v2)"
        exit 3
      fi
      containerd_dir=$(cd "$containerd_dir" && pwd)
      # Built without version ldflags, it says "2.3.4+unknown": the number is the tag's.
      containerd_version=$("$containerd_dir/containerd" --version | awk '{ sub(/\+.*/, "", $3); print $3 }')
      ;;
  esac
  [ "$set_name" = next ] || containerd_dir=$(unpack containerd "$containerd_version")/usr/bin
  runsc=$(unpack runsc "$runsc_version")/usr/bin/runsc
fi

# The check: each binary runs here and says what it is.
for binary in "$containerd_dir/containerd" "$containerd_dir/ctr" "$containerd_dir/containerd-shim-runc-v2" "$runsc"; do
  [ -x "$binary" ] || { say "releases.sh: $set_name: $binary is missing"; exit 1; }
done
containerd_says=$("$containerd_dir/containerd" --version)
ctr_says=$("$containerd_dir/ctr" --version)
"$containerd_dir/containerd-shim-runc-v2" -v >/dev/null
runsc_says=$("$runsc" --version 2>&1 | sed -n 1p)  # sed reads it all: head would leave runsc a SIGPIPE

say "release set $set_name: containerd $containerd_version ($containerd_dir), runsc $runsc_version ($runsc)"
say "  $containerd_says"
say "  $ctr_says"
say "  $runsc_says"
if [ "$mode" = --env ]; then
  printf 'WARDEN_RELEASE_SET=%q\nWARDEN_CONTAINERD_DIR=%q\nWARDEN_RUNSC=%q\nWARDEN_CONTAINERD_VERSION=%q\nWARDEN_RUNSC_VERSION=%q\n' \
    "$set_name" "$containerd_dir" "$runsc" "$containerd_version" "$runsc_version"
fi
