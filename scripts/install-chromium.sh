#!/usr/bin/env bash
# Headless Chromium for the status page's browser tests (tests/test_web_browser.py).
# Idempotent: does nothing but say so when chromium is already installed. Debian 12, as root.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: already installed ($(chromium --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: run as root (apt-get install chromium)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "chromium: apt-get update"
apt-get update -qq
# fonts-dejavu-core: readable text in screenshots on a minimal system.
echo "chromium: apt-get install chromium fonts-dejavu-core"
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium: installed ($(chromium --version 2>/dev/null || echo 'version unknown'))"
