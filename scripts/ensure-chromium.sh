#!/bin/sh
# The browser tests drive Debian's chromium (never a downloaded browser build). Install it when missing.
set -e
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium saknas: installera Debian-paketet 'chromium' (sudo apt-get install chromium)" >&2
  exit 1
fi
