#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/e2e), only when it is missing. Idempotent.
# Playwright drives it through executable_path=/usr/bin/chromium (Playwright's own browser download is not used).
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "Chromium is missing and apt-get is not available: install chromium so /usr/bin/chromium exists" >&2
  exit 1
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "Installing Chromium needs root (or sudo)" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver
/usr/bin/chromium --version
