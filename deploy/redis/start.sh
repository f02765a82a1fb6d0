#!/bin/sh
# A Redis data node for docker compose: append-only file (a restart loses no accepted job),
# noeviction (evicted broker keys would be lost jobs), and the users of users.acl (made from
# cli/redis_acl.py): `atelier`, with REDIS_PASSWORD, may run the commands Atelier uses and
# no other (no FLUSHALL, CONFIG, ACL, KEYS, ...); `replication`, with
# REDIS_REPLICATION_PASSWORD (HA only; without it that user is off), is what replicas and
# sentinels log in as. Redis replays its append-only file as the `default` user and (7.0)
# drops any MULTI/EXEC that user may not run, so `default` keeps its rights behind a random
# password made here and kept nowhere: nobody logs in as it.
#
# The settings go into a config file of mode 0600 (the password stays out of `ps`), written
# afresh at each start in the data directory, where the image's entry point hands it to the
# redis user and where a sentinel's CONFIG REWRITE can record a failover.
#
# High availability (docker-compose.ha.yml): every node carries `masteruser`/`masterauth`
# (the `replication` user), since a failover may make any of them a replica. REDIS_ANNOUNCE
# is this node's name on the network (replicas announce names, not container addresses, which change on a restart).
# REDIS_SENTINELS lists the sentinels: a node that starts while they name another primary
# starts as its replica instead of taking writes a demotion would throw away; on the first
# start, when none answers, REDIS_REPLICAOF (a host name; empty: primary) decides.
# Extra arguments go to Redis.
set -eu
: "${REDIS_PASSWORD:?REDIS_PASSWORD is empty: run deploy/make-env.sh}"
conf="${REDIS_CONF:-/data/atelier-redis.conf}"
acl="${REDIS_USERS_ACL:-/atelier/users.acl}"
unknowable=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
replication="${REDIS_REPLICATION_PASSWORD:-}"

server=$(redis-server --version | sed -n 's/.* v=\([0-9]*\.[0-9]*\).*/\1/p')

# The rules of user $1 in users.acl: its line "name rules...", and each "name+X.Y rules..."
# (commands Redis X.Y brought) when this server is at least X.Y: a rule naming a command the
# server does not know stops it at start.
rules() {
  found=$(sed -n "s/^$1 //p" "$acl")
  if [ -z "$found" ]; then
    echo "no rules for $1 in $acl" >&2
    exit 1
  fi
  sed -n "s/^$1+\([0-9.]*\) \(.*\)/\1 \2/p" "$acl" | {
    while read -r since more; do
      if [ "$(printf '%s\n%s\n' "$since" "$server" | sort -V | head -n 1)" = "$since" ]; then
        found="$found $more"
      fi
    done
    echo "$found"
  }
}

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

atelier_rules=$(rules atelier)
replication_rules=$(rules replication)
umask 077
cat > "$conf" <<EOF
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
user default on >$unknowable ~* &* +@all
user atelier on >$REDIS_PASSWORD $atelier_rules
repl-diskless-sync-delay 0
EOF
if [ -n "$replication" ]; then
  printf 'user replication on >%s %s\nmasteruser replication\nmasterauth %s\n' \
    "$replication" "$replication_rules" "$replication" >> "$conf"
else
  echo "user replication off $replication_rules" >> "$conf"
fi
if [ -n "${REDIS_ANNOUNCE:-}" ]; then
  echo "replica-announce-ip $REDIS_ANNOUNCE" >> "$conf"
fi
primary=$(primary_now)
if [ -n "$primary" ] && [ "$primary" != "${REDIS_ANNOUNCE:-}" ]; then
  echo "replicaof $primary 6379" >> "$conf"
fi
exec docker-entrypoint.sh redis-server "$conf" "$@"
