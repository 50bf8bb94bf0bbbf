#!/usr/bin/env bash
# Install Debian packages with apt-get, as root or through sudo, for the ensure-*.sh scripts:
#   scripts/apt-install.sh PACKAGE...
# Fails with a clear message where there is no apt-get, or no root and no sudo.
set -euo pipefail

if ! command -v apt-get >/dev/null 2>&1; then
  echo "$* are needed; install them with your package manager" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "$* are missing and installing them needs root: apt-get install $*" >&2
    exit 1
  fi
fi

echo "installing $* with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
