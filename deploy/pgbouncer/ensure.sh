#!/usr/bin/env bash
# ensure.sh — make sure a pgbouncer binary exists for the PgBouncer tests.
#
#   deploy/pgbouncer/ensure.sh      (`make test` runs it first)
#
# The tests start PgBouncer themselves (internal/database/pgbouncertest) in
# transaction pooling mode in front of the private cluster. When the binary is
# missing this installs Debian's `pgbouncer` package, which needs root; the
# package's own service is not started.
set -euo pipefail

if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure.sh: pgbouncer not found; install it (apt-get install pgbouncer) or run as root to have it installed" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure.sh: pgbouncer not found and apt-get is unavailable; install PgBouncer (1.18 or newer) yourself" >&2
  exit 1
fi
echo "ensure.sh: pgbouncer not found; installing the pgbouncer package with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q pgbouncer >/dev/null ||
  { apt-get update -q >/dev/null && apt-get install -y -q pgbouncer >/dev/null; } || {
    echo "ensure.sh: apt-get install pgbouncer failed" >&2
    exit 1
  }
# Debian starts its own pgbouncer service on 6432; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now pgbouncer >/dev/null 2>&1 || true; fi
[ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || {
  echo "ensure.sh: the pgbouncer package did not provide the pgbouncer binary" >&2
  exit 1
}
