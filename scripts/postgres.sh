#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and local multi-worker runs.
#
#   scripts/postgres.sh start DIR   install Debian's postgresql if initdb/pg_ctl are missing (root, apt-get),
#                                   initdb into DIR/data, start on a free 127.0.0.1 port, create database dse_test,
#                                   print the SQLAlchemy URL as the last line of stdout; exit 0.
#                                   (also written to DIR/url, readable by its owner only)
#   scripts/postgres.sh stop DIR    stop that server and remove DIR.
#
# As root the server runs as the `postgres` OS user (from the Debian package) or, failing that, a system user
# `dsepg` created here (initdb refuses root); DIR is chowned to it, so DIR's parents must be traversable by it
# (e.g. a fresh `mktemp -d` under /tmp). The server listens on 127.0.0.1 only, with a random password
# (scram-sha-256) and fsync off: it is for tests, not for data you want to keep. Logs: DIR/server.log.
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }
log() { echo "postgres.sh: $*" >&2; }

usage() { die "usage: $0 start DIR | stop DIR"; }

find_bindir() {
  local c d
  if c=$(command -v pg_ctl 2>/dev/null) && command -v initdb >/dev/null 2>&1; then
    d=$(dirname "$(readlink -f "$c")")
    if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
  done
  return 1
}

install_postgres() {
  [ "$(id -u)" = 0 ] || die "initdb/pg_ctl not found (looked in PATH and /usr/lib/postgresql/*/bin) and not root: install Debian's 'postgresql' package"
  command -v apt-get >/dev/null 2>&1 || die "initdb/pg_ctl not found and apt-get is not available to install 'postgresql'"
  log "installing Debian's postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends postgresql >&2 || die "apt-get install postgresql failed"
}

# run_as CMD...: run as the server's OS user (root cannot run initdb/postgres)
run_as() {
  if [ "$(id -u)" != 0 ]; then "$@"
  elif command -v runuser >/dev/null 2>&1; then runuser -u "$PGUSER_OS" -- "$@"
  else su -s /bin/sh "$PGUSER_OS" -c "$(printf '%q ' "$@")"
  fi
}

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
  else
    echo $(( 20000 + RANDOM % 40000 ))
  fi
}

start() {
  local dir=$1 bin port pw i
  case "$dir" in *[[:space:]\'\"\\]*) die "DIR must not contain spaces, quotes or backslashes: '$dir'";; esac
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then die "DIR '$dir' exists and is not empty"; fi
  bin=$(find_bindir) || { install_postgres; bin=$(find_bindir) || die "postgresql installed but initdb/pg_ctl still not found"; }

  PGUSER_OS=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then PGUSER_OS=postgres
    else
      id dsepg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dsepg \
        || die "cannot create the unprivileged user 'dsepg' to run the server"
      PGUSER_OS=dsepg
    fi
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  : > "$dir/dse-pg.env"  # marks DIR as ours, so that 'stop DIR' removes it even after a failed start
  if [ "$(id -u)" = 0 ]; then chown "$PGUSER_OS" "$dir"; fi
  chmod 700 "$dir"
  cd /  # the server user may not be able to read the caller's working directory
  run_as test -w "$dir" || die "user '$PGUSER_OS' cannot write '$dir': its parent directories must be traversable by it"

  pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  (umask 077; printf '%s\n' "$pw" > "$dir/pwfile")
  if [ "$(id -u)" = 0 ]; then chown "$PGUSER_OS" "$dir/pwfile"; fi
  run_as "$bin/initdb" -D "$dir/data" -U dse --pwfile="$dir/pwfile" --auth=scram-sha-256 -E UTF8 --no-locale \
    > "$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -n 20 "$dir/initdb.log")"
  rm -f "$dir/pwfile"

  for i in 1 2 3 4 5; do
    port=$(free_port)
    if run_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
      start >&2; then
      break
    fi
    [ "$i" = 5 ] && die "the server did not start (5 tries): $(tail -n 20 "$dir/server.log" 2>/dev/null)"
    log "start on port $port failed, retrying on another port"
  done
  printf 'BIN=%q\nPORT=%q\nPGUSER_OS=%q\n' "$bin" "$port" "$PGUSER_OS" > "$dir/dse-pg.env"

  PGPASSWORD=$pw "$bin/createdb" -h 127.0.0.1 -p "$port" -U dse dse_test >&2 \
    || die "createdb dse_test failed: $(tail -n 20 "$dir/server.log")"
  (umask 077; echo "postgresql://dse:$pw@127.0.0.1:$port/dse_test" > "$dir/url")  # for other shells; mode 600
  echo "postgresql://dse:$pw@127.0.0.1:$port/dse_test"
}

stop() {
  local dir=$1
  if [ ! -e "$dir" ]; then log "'$dir' does not exist: nothing to stop"; return 0; fi
  [ -f "$dir/dse-pg.env" ] || [ -f "$dir/data/PG_VERSION" ] || die "'$dir' was not made by '$0 start': not removing it"
  PGUSER_OS=$(id -un); BIN=""
  # shellcheck disable=SC1091
  [ -f "$dir/dse-pg.env" ] && . "$dir/dse-pg.env"
  [ -n "$BIN" ] || BIN=$(find_bindir) || true
  cd /
  if [ -n "$BIN" ] && [ -f "$dir/data/postmaster.pid" ]; then
    run_as "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 || log "pg_ctl stop failed (already stopped?)"
  fi
  rm -rf "$dir"
}

[ $# = 2 ] || usage
case "$1" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  *) usage ;;
esac
