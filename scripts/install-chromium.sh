#!/usr/bin/env bash
# Make sure Debian's chromium and its chromedriver are installed: the Mini App test drives the page
# in a real headless browser through /usr/bin/chromedriver (nothing is downloaded at test time).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
else
  echo "Please install chromium and chromium-driver (Debian/Ubuntu packages) and re-run." >&2; exit 1
fi
command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ]
