#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's `prometheus` package when they are not on
# PATH already. The tests start their own Prometheus process, so the package's service is
# neither started nor enabled. Safe to run again: does nothing once both commands exist.
set -euo pipefail

say() { printf '[prometheus] %s\n' "$*" >&2; }

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  say "already installed: $(command -v prometheus), $(command -v promtool)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  say "error: apt-get not found; install Prometheus (with promtool) by other means and put it on PATH"
  exit 1
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    say "error: need root (or sudo) to install the Debian package"
    exit 1
  fi
fi

# Keep the package's maintainer scripts from starting the service inside a container or CI.
policy_dir=/usr/sbin
policy="$policy_dir/policy-rc.d"
placed_policy=false
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  placed_policy=true
fi
cleanup() { if $placed_policy; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

say "installing Debian's prometheus package"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >&2

command -v prometheus >/dev/null && command -v promtool >/dev/null
say "installed: $(prometheus --version 2>&1 | head -n 1)"
