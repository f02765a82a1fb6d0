#!/bin/sh
# Writes .env for docker compose from .env.example, with a fresh random value for every
# secret left empty there (Redis's users' and the sentinels' passwords, Atelier's S3 secret,
# SeaweedFS's admin secret, Grafana's admin password). Mode 0600 from the start; an
# existing .env is never overwritten. `--ha` also makes compose read docker-compose.ha.yml
# (a Redis replica and three sentinels) on every command.
#   deploy/make-env.sh [--ha] && docker compose up --build
set -eu
cd "$(dirname "$0")/.."
ha=""
case "${1:-}" in
  --ha) ha=1 ;;
  "") ;;
  *) echo "usage: deploy/make-env.sh [--ha]" >&2; exit 2 ;;
esac
if [ -e .env ]; then
  echo ".env exists; delete it first to make new secrets (data volumes keep the old ones)" >&2
  exit 1
fi
umask 077
HA="$ha" python3 - <<'PY'
import os, re, secrets
from pathlib import Path

SECRETS = ("REDIS_PASSWORD", "REDIS_REPLICATION_PASSWORD", "SENTINEL_PASSWORD",
           "ATELIER_S3_SECRET_ACCESS_KEY",
           "SEAWEEDFS_ADMIN_SECRET_ACCESS_KEY", "GF_SECURITY_ADMIN_PASSWORD")
text = Path(".env.example").read_text()
for name in SECRETS:
    text, found = re.subn(rf"^{name}=$", f"{name}={secrets.token_hex(24)}", text, flags=re.M)
    assert found == 1, f"{name}= (empty) is missing from .env.example"
if os.environ["HA"]:
    text += "\n# High availability: compose reads both files.\n"
    text += "COMPOSE_FILE=docker-compose.yml:docker-compose.ha.yml\n"
Path(".env").write_text(text)
PY
echo "wrote .env (0600) with new secrets"
