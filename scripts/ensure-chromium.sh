#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed: the dashboard's tests load
# the page in a real headless browser (Selenium, /usr/bin/chromedriver). No browser is
# downloaded at run time. Installs them with apt-get when missing; needs root or sudo for that.
set -euo pipefail

have_chromium() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if have_chromium; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium and chromium-driver are needed; install them with your package manager" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "chromium is missing and installing it needs root: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi

echo "installing chromium and chromium-driver with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
have_chromium
