#!/usr/bin/env bash
# Make sure node, npm and npx are installed: the tests publish quotes with MQTT.js
# (`npx mqtt pub ...`, `node_modules/.bin/mqtt pub ...`), as a person would.
# Installs Debian's nodejs and npm when they are missing; needs root or sudo for that.
set -euo pipefail

have_node() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && command -v npx >/dev/null 2>&1; }

if have_node; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "node and npm are needed; install them with your package manager" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "node or npm is missing and installing them needs root: apt-get install nodejs npm" >&2
    exit 1
  fi
fi

echo "installing nodejs and npm with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
have_node
