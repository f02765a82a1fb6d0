#!/bin/sh
# A Redis data node for docker compose: append-only file (a restart loses no accepted job),
# noeviction (evicted broker keys would be lost jobs), and one user for Atelier, `atelier`,
# with REDIS_PASSWORD. Redis replays its append-only file as the `default` user and (7.0)
# drops any MULTI/EXEC that user may not run, so `default` keeps its rights behind a random
# password made here and kept nowhere: nobody logs in as it.
#
# The settings go into a config file of mode 0600 (the password stays out of `ps`), written
# afresh at each start in the data directory, where the image's entry point hands it to the
# redis user and where a sentinel's CONFIG REWRITE can record a failover.
#
# High availability (docker-compose.ha.yml): every node carries `masteruser`/`masterauth`,
# since a failover may make any of them a replica. REDIS_ANNOUNCE is this node's name on the
# network (replicas announce names, not container addresses, which change on a restart).
# REDIS_SENTINELS lists the sentinels: a node that starts while they name another primary
# starts as its replica instead of taking writes a demotion would throw away; on the first
# start, when none answers, REDIS_REPLICAOF (a host name; empty: primary) decides.
# Extra arguments go to Redis.
set -eu
: "${REDIS_PASSWORD:?REDIS_PASSWORD is empty: run deploy/make-env.sh}"
conf="${REDIS_CONF:-/data/atelier-redis.conf}"
unknowable=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

primary_now() {
  for sentinel in ${REDIS_SENTINELS:-}; do
    answer=$(REDISCLI_AUTH="${SENTINEL_PASSWORD:-}" timeout 3 \
      redis-cli --no-auth-warning -h "$sentinel" -p 26379 \
      sentinel get-master-addr-by-name atelier 2>/dev/null | head -n 1) || true
    if [ -n "$answer" ]; then
      echo "$answer"
      return
    fi
  done
  echo "${REDIS_REPLICAOF:-}"
}

umask 077
cat > "$conf" <<EOF
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
user default on >$unknowable ~* &* +@all
user atelier on >$REDIS_PASSWORD ~* &* +@all
masteruser atelier
masterauth $REDIS_PASSWORD
repl-diskless-sync-delay 0
EOF
if [ -n "${REDIS_ANNOUNCE:-}" ]; then
  echo "replica-announce-ip $REDIS_ANNOUNCE" >> "$conf"
fi
primary=$(primary_now)
if [ -n "$primary" ] && [ "$primary" != "${REDIS_ANNOUNCE:-}" ]; then
  echo "replicaof $primary 6379" >> "$conf"
fi
exec docker-entrypoint.sh redis-server "$conf" "$@"
