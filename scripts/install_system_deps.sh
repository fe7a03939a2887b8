#!/usr/bin/env bash
# System packages the browser tests need (Debian's Chromium; Playwright cannot download its own here).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium missing: run 'sudo apt-get install -y chromium' for the browser tests" >&2
  exit 0
fi
apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
