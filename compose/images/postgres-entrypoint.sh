#!/bin/sh
# Initialise the cluster on first start (empty volume), then run postgres in the foreground.
# Needs POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB.
set -eu
: "${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
: "${POSTGRES_DB:?POSTGRES_DB is not set}"
if [ "$(id -u)" = 0 ]; then
    chown -R postgres:postgres "$PGDATA" /backups
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb -D "$PGDATA" -E UTF8 --locale=C.UTF-8 -U "$POSTGRES_USER" --pwfile="$pwfile" -A scram-sha-256 --auth-local=trust >/dev/null
    rm -f "$pwfile"
    printf "listen_addresses = '*'\nmax_connections = %s\n" "${POSTGRES_MAX_CONNECTIONS:-100}" >> "$PGDATA/postgresql.conf"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" "$@"
