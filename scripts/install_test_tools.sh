#!/usr/bin/env bash
# Install the Debian packages the test suite drives, only when missing. Idempotent.
#   chromium, chromium-driver  the browser tests (tests/e2e): Playwright uses executable_path=/usr/bin/chromium,
#                              never a browser download of its own
#   docker-compose             `docker-compose config` validates docker-compose.yaml (tests/dags/test_compose.py);
#                              no Docker engine is needed for that
set -euo pipefail

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium chromium-driver)
command -v docker-compose >/dev/null || missing+=(docker-compose)
(( ${#missing[@]} )) || exit 0

if ! command -v apt-get >/dev/null; then
  echo "Missing for the tests: ${missing[*]}; apt-get is not available, install them by hand" >&2
  exit 1
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "Installing ${missing[*]} needs root (or sudo)" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
