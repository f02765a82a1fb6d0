#!/bin/sh
# One-shot (compose's `minio-init`): with MinIO's root account, create Atelier's bucket and
# a user that can read, write, list and delete objects in that bucket and nothing else.
# Atelier runs as that user; the root account never leaves this container and MinIO.
# Safe to run again: an existing bucket, policy or user is updated in place.
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${ATELIER_S3_BUCKET:?}"
: "${ATELIER_S3_ACCESS_KEY_ID:?}" "${ATELIER_S3_SECRET_ACCESS_KEY:?}"
if [ "$ATELIER_S3_ACCESS_KEY_ID" = "$MINIO_ROOT_USER" ]; then
  echo "ATELIER_S3_ACCESS_KEY_ID must not be MinIO's root user" >&2
  exit 1
fi
mc alias set root "${MINIO_URL:-http://minio:9000}" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "root/$ATELIER_S3_BUCKET"
sed "s/BUCKET/$ATELIER_S3_BUCKET/g" /init/atelier-policy.json > /tmp/atelier-policy.json
mc admin policy create root atelier-bucket /tmp/atelier-policy.json
mc admin user add root "$ATELIER_S3_ACCESS_KEY_ID" "$ATELIER_S3_SECRET_ACCESS_KEY"
# Attaching a policy the user already has is an error; the policy was just updated anyway.
mc admin policy attach root atelier-bucket --user "$ATELIER_S3_ACCESS_KEY_ID" 2>/dev/null || true
mc admin user info root "$ATELIER_S3_ACCESS_KEY_ID" | grep -q atelier-bucket
echo "bucket $ATELIER_S3_BUCKET ready for user $ATELIER_S3_ACCESS_KEY_ID"
