#!/usr/bin/env bash
# The end-to-end page tests drive Debian's Chromium headless through its ChromeDriver.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "the page tests need chromium and chromium-driver (apt-get install chromium chromium-driver)" >&2
  exit 1
fi
echo "installing Chromium and ChromeDriver for the page tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
