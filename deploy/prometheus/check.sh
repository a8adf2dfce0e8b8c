#!/usr/bin/env bash
# check.sh — lint and unit-test the Prometheus alert rules.
#
#   deploy/prometheus/check.sh      (from any directory; `make alerts/check`, CI)
#
# Runs `promtool check rules` on alerts.yml, `promtool test rules` on
# alerts_test.yml and `promtool check config` on prometheus.yml (the compose
# file's Prometheus, which loads alerts.yml). When promtool is missing it installs Debian's `prometheus`
# package, which provides /usr/bin/promtool; that needs root.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

ensure_promtool() {
  if command -v promtool >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "check.sh: promtool not found; install it (apt-get install prometheus) or run as root to have it installed" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "check.sh: promtool not found and apt-get is unavailable; install promtool (Prometheus 2.x) yourself" >&2
    exit 1
  fi
  echo "check.sh: promtool not found; installing the prometheus package with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q prometheus >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null; } || {
      echo "check.sh: apt-get install prometheus failed" >&2
      exit 1
    }
  command -v promtool >/dev/null 2>&1 || {
    echo "check.sh: the prometheus package did not provide promtool" >&2
    exit 1
  }
}

ensure_promtool
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
promtool check config deploy/prometheus/prometheus.yml
