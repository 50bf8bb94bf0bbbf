#!/usr/bin/env bash
# Make sure mosquitto (the broker the tests start) and mosquitto_pub are installed.
# Installs Debian's packages when they are missing; needs root or sudo for that.
set -euo pipefail

have_broker() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }
have_clients() { command -v mosquitto_pub >/dev/null 2>&1; }

if have_broker && have_clients; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" mosquitto mosquitto-clients
have_broker && have_clients
