#!/bin/sh
# Container entry point: `api` or `worker [--queues train|generate|train,generate|webhooks]`.
set -e
role="${1:-api}"
shift || true
case "$role" in
  api)    exec atelier api --bind "0.0.0.0:${PORT:-8000}" --workers "${API_WORKERS:-2}" "$@" ;;
  worker) exec atelier worker "$@" ;;
  *)      exec "$role" "$@" ;;
esac
