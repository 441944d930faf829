#!/usr/bin/env bash
# Installs Debian's `chromium` for the dashboard's browser tests and screenshots. Playwright
# drives this system browser (its own browser downloads are never used), so the package is
# all that is needed. Safe to run again: does nothing once /usr/bin/chromium exists.
set -euo pipefail

say() { printf '[browser] %s\n' "$*" >&2; }
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}  # overridable for the tests of this script

if [[ -x "$CHROMIUM" ]]; then
  say "already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  say "error: apt-get not found; install Chromium by other means so that $CHROMIUM exists"
  exit 1
fi

if [[ "$(id -u)" -ne 0 ]]; then
  say "error: installing Debian's chromium package needs root; run: sudo $0"
  exit 1
fi

say "installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Without recommends the package brings no fonts: pages would render text as empty boxes.
apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core >&2

"$CHROMIUM" --version >&2
say "installed: $CHROMIUM"
