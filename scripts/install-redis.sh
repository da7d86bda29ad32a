#!/usr/bin/env bash
# Make sure a redis-server binary is on PATH (tests and the demo start their own).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install redis
else
  echo "Please install redis-server (7.x) and re-run." >&2; exit 1
fi
command -v redis-server >/dev/null
