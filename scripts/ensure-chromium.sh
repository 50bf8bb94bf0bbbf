#!/usr/bin/env bash
# Make sure Debian's chromium and chromium-driver are installed: the dashboard's tests load
# the page in a real headless browser (Selenium, /usr/bin/chromedriver). No browser is
# downloaded at run time. Installs them with apt-get when missing; needs root or sudo for that.
set -euo pipefail

have_chromium() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if have_chromium; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" chromium chromium-driver
have_chromium
