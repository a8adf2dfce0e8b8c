#!/usr/bin/env bash
# ensure-chromium.sh — make sure a Chromium exists for `make screenshots`.
#
# When it is missing this installs Debian's `chromium` package, which needs
# root. Nothing else in the build or the tests needs a browser.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium.sh: chromium not found; install it (apt-get install chromium) or run as root on Debian" >&2
  exit 1
fi
echo "ensure-chromium.sh: chromium not found; installing the chromium package with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null ||
  { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || {
    echo "ensure-chromium.sh: apt-get install chromium failed" >&2
    exit 1
  }
command -v chromium >/dev/null 2>&1 || { echo "ensure-chromium.sh: the chromium package did not provide chromium" >&2; exit 1; }
