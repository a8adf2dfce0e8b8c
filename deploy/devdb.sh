#!/usr/bin/env bash
# devdb.sh — a private PostgreSQL cluster under .data/pg for `make run` and `make test`.
#
#   deploy/devdb.sh url     start the cluster if needed (initdb on first use) and print its URL
#   deploy/devdb.sh stop    stop it
#   deploy/devdb.sh status  say whether it runs
#
# initdb and pg_ctl refuse to run as root; when we are root they run as the
# `postgres` user, which owns .data/pg. The cluster listens on 127.0.0.1 at
# DEVDB_PORT (default: 55000-55899, derived from the checkout's path) and on a
# socket inside .data/pg, so it never collides with a system PostgreSQL or
# another checkout's cluster. It is reused on the next call.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/.data/pg"
# Each checkout gets its own port, so a CI clone never meets this one's cluster.
# A port taken by something else (say the cluster of a deleted clone at the same
# path, still shutting down) moves the new cluster to the next free port, which
# .data/pg.port remembers.
portfile="$root/.data/pg.port"
if [ -n "${DEVDB_PORT:-}" ]; then
  port=$DEVDB_PORT
elif [ -s "$portfile" ]; then
  port=$(cat "$portfile")
else
  port=$((55000 + $(printf '%s' "$root" | cksum | cut -d' ' -f1) % 900))
fi
log="$root/.data/pg.log"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

find_bin() {
  local name=$1 dir
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
  done
  return 1
}

ensure_installed() {
  if find_bin initdb >/dev/null && find_bin pg_ctl >/dev/null; then return; fi
  echo "devdb: PostgreSQL server binaries not found; installing with apt-get" >&2
  if [ "$(id -u)" -ne 0 ]; then echo "devdb: need root to apt-get install postgresql" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  ensure_installed
  local initdb pg_ctl
  initdb=$(find_bin initdb); pg_ctl=$(find_bin pg_ctl)
  mkdir -p "$root/.data"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    # postgres must be able to reach .data through the checkout's parents.
    d="$root"; while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    chown postgres "$root/.data"
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    echo "devdb: creating cluster in $data" >&2
    as_owner "$initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 256MB
fsync = on
CONF
  fi
  touch "$log"; [ "$(id -u)" -eq 0 ] && chown postgres "$log"
  if ! as_owner "$pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if [ -z "${DEVDB_PORT:-}" ]; then
      local tries=0
      while listening "$port" && [ $tries -lt 100 ]; do
        port=$((port + 1)); tries=$((tries + 1))
      done
      echo "$port" >"$portfile"
    fi
    # The server outlives this script: it must not inherit our open file
    # descriptors (a caller's `flock` lock on fd 9 would be held for as long
    # as the cluster runs).
    ( for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
      as_owner "$pg_ctl" -D "$data" -l "$log" -w -t 60 -o "-p $port -k $data -c autovacuum_naptime=10s" start >/dev/null )
  fi
}

url() { echo "postgres://postgres@127.0.0.1:$port/switchboard?sslmode=disable"; }

case "${1:-url}" in
  url)
    start
    createdb=$(find_bin createdb)
    as_owner "$createdb" -h "$data" -p "$port" -U postgres switchboard 2>/dev/null || true
    url ;;
  stop)
    pg_ctl=$(find_bin pg_ctl)
    [ -d "$data" ] && as_owner "$pg_ctl" -D "$data" -m fast stop || true ;;
  status)
    pg_ctl=$(find_bin pg_ctl)
    as_owner "$pg_ctl" -D "$data" status ;;
  *) echo "usage: $0 url|stop|status" >&2; exit 2 ;;
esac
