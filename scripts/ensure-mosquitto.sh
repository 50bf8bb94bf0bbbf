#!/usr/bin/env bash
# Make sure mosquitto (the broker the tests start) and mosquitto_pub are installed.
# Installs Debian's packages when they are missing; needs root or sudo for that.
set -euo pipefail

have_broker() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }
have_clients() { command -v mosquitto_pub >/dev/null 2>&1; }

if have_broker && have_clients; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "mosquitto and mosquitto-clients are needed; install them with your package manager" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "mosquitto is missing and installing it needs root: apt-get install mosquitto mosquitto-clients" >&2
    exit 1
  fi
fi

echo "installing mosquitto and mosquitto-clients with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null
have_broker && have_clients
