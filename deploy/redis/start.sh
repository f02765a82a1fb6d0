#!/bin/sh
# Redis for docker compose: append-only file (a restart loses no accepted job), noeviction
# (evicted broker keys would be lost jobs), and one user for Atelier, `atelier`, with
# REDIS_PASSWORD. Redis replays its append-only file as the `default` user and (7.0) drops
# any MULTI/EXEC that user may not run, so `default` keeps its rights behind a random
# password made here and kept nowhere: nobody logs in as it. Extra arguments go to Redis.
set -eu
: "${REDIS_PASSWORD:?REDIS_PASSWORD is empty: run deploy/make-env.sh}"
unknowable=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
exec docker-entrypoint.sh redis-server \
  --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
  --user default on ">$unknowable" '~*' '&*' '+@all' \
  --user atelier on ">$REDIS_PASSWORD" '~*' '&*' '+@all' \
  "$@"
