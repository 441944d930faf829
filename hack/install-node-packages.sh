#!/usr/bin/env bash
# Installs what a real node needs from Debian: containerd (with its runc shim), runc, and
# busybox-static (the test images and the pod sandbox image are built from it). Does nothing
# when all three commands exist. Real nodes need root anyway, so this does not try sudo.
set -euo pipefail

say() { printf '[node-packages] %s\n' "$*" >&2; }

PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
if [[ ${#missing[@]} -eq 0 ]]; then
  say "already installed: containerd, runc, busybox"
  exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
  say "error: real nodes need root, and installing ${missing[*]} needs root too"
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "error: apt-get not found; install ${missing[*]} by other means and put them on PATH"
  exit 1
fi

# The containerd package would start its own daemon where a service manager runs; ours are
# started per node by the local cluster, so keep the maintainer scripts from starting it.
policy=/usr/sbin/policy-rc.d
placed_policy=false
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  placed_policy=true
fi
cleanup() { if $placed_policy; then rm -f "$policy"; fi; }
trap cleanup EXIT

say "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
say "installed: $(containerd --version 2>&1 | head -n 1); $(runc --version 2>&1 | head -n 1)"
