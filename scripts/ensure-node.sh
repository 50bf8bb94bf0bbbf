#!/usr/bin/env bash
# Make sure node, npm and npx are installed: the tests publish quotes with MQTT.js
# (`npx mqtt pub ...`, `node_modules/.bin/mqtt pub ...`), as a person would.
# Installs Debian's nodejs and npm when they are missing; needs root or sudo for that.
set -euo pipefail

have_node() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && command -v npx >/dev/null 2>&1; }

if have_node; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" nodejs npm
have_node
