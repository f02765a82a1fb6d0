#!/bin/sh
# Writes .env for docker compose from .env.example, with a fresh random value for every
# secret left empty there (Redis's password, MinIO's root and Atelier's S3 secret, Grafana's
# admin password). Mode 0600 from the start; an existing .env is never overwritten.
#   deploy/make-env.sh && docker compose up --build
set -eu
cd "$(dirname "$0")/.."
if [ -e .env ]; then
  echo ".env exists; delete it first to make new secrets (data volumes keep the old ones)" >&2
  exit 1
fi
umask 077
python3 - <<'PY'
import re, secrets
from pathlib import Path

SECRETS = ("REDIS_PASSWORD", "MINIO_ROOT_PASSWORD", "ATELIER_S3_SECRET_ACCESS_KEY",
           "GF_SECURITY_ADMIN_PASSWORD")
text = Path(".env.example").read_text()
for name in SECRETS:
    text, found = re.subn(rf"^{name}=$", f"{name}={secrets.token_hex(24)}", text, flags=re.M)
    assert found == 1, f"{name}= (empty) is missing from .env.example"
Path(".env").write_text(text)
PY
echo "wrote .env (0600) with new secrets"
