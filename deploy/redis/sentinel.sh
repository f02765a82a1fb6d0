#!/bin/sh
# A sentinel for docker-compose.ha.yml: watches the primary under the service name Atelier's
# URL names (`atelier`), with the quorum of 2 out of 3 that promotes a replica when the
# primary stops answering (docs/high-availability.md has the settings and what they buy).
# Names, not addresses: containers get a new address when they restart, so sentinels
# resolve and announce host names. It reaches the data nodes as the `replication` user
# (REDIS_REPLICATION_PASSWORD; users.acl: a sentinel's commands, not Atelier's);
# SENTINEL_PASSWORD, when set, is asked of its own clients (Atelier, KEDA, other
# sentinels). A sentinel rewrites its config file as it learns; it is written afresh at
# each start and the other sentinels' hello messages bring it up to date again.
set -eu
: "${REDIS_REPLICATION_PASSWORD:?REDIS_REPLICATION_PASSWORD is empty: run deploy/make-env.sh}"
: "${SENTINEL_ANNOUNCE:?SENTINEL_ANNOUNCE names this sentinel on the network}"
conf="${SENTINEL_CONF:-/data/sentinel.conf}"
umask 077
cat > "$conf" <<EOF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SENTINEL_ANNOUNCE
sentinel monitor atelier ${REDIS_PRIMARY:-redis} 6379 2
sentinel auth-user atelier replication
sentinel auth-pass atelier $REDIS_REPLICATION_PASSWORD
sentinel down-after-milliseconds atelier 5000
sentinel failover-timeout atelier 20000
sentinel parallel-syncs atelier 1
EOF
if [ -n "${SENTINEL_PASSWORD:-}" ]; then
  printf 'requirepass %s\nsentinel sentinel-pass %s\n' "$SENTINEL_PASSWORD" "$SENTINEL_PASSWORD" \
    >> "$conf"
fi
exec docker-entrypoint.sh redis-server "$conf" --sentinel "$@"
