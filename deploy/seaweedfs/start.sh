#!/bin/sh
# SeaweedFS for docker compose: a master, a volume server, a filer and the S3 gateway in one
# `weed server`. Only S3 (:8333) listens beyond the container: the master, volume server and
# filer answer anyone without credentials, so they listen on loopback, where nothing but
# this script reaches them.
#
# Two S3 identities, written to a config file of mode 0600 at each start:
# - the operator's (SEAWEEDFS_ADMIN_ACCESS_KEY_ID/SECRET), with every right; used by nobody
#   in this project, and kept out of Atelier's containers;
# - Atelier's (ATELIER_S3_ACCESS_KEY_ID/SECRET), allowed to read, write, list and tag
#   objects in ATELIER_S3_BUCKET and nothing else: no other bucket, no bucket creation or
#   deletion. The bucket is created here (`weed shell`, over loopback) before the
#   container reports healthy.
# Telemetry to SeaweedFS's servers is off. Extra arguments go to `weed server`.
set -eu
: "${SEAWEEDFS_ADMIN_ACCESS_KEY_ID:?}" "${SEAWEEDFS_ADMIN_SECRET_ACCESS_KEY:?}"
: "${ATELIER_S3_BUCKET:?}" "${ATELIER_S3_ACCESS_KEY_ID:?}" "${ATELIER_S3_SECRET_ACCESS_KEY:?}"
if [ "$ATELIER_S3_ACCESS_KEY_ID" = "$SEAWEEDFS_ADMIN_ACCESS_KEY_ID" ]; then
  echo "ATELIER_S3_ACCESS_KEY_ID must not be the admin identity's key" >&2
  exit 1
fi
data=/data
ready="$data/.bucket-ready"
rm -f "$ready"
umask 077
b="$ATELIER_S3_BUCKET"
cat > "$data/s3-identities.json" <<EOF
{"identities": [
  {"name": "admin",
   "credentials": [{"accessKey": "$SEAWEEDFS_ADMIN_ACCESS_KEY_ID",
                    "secretKey": "$SEAWEEDFS_ADMIN_SECRET_ACCESS_KEY"}],
   "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
  {"name": "atelier",
   "credentials": [{"accessKey": "$ATELIER_S3_ACCESS_KEY_ID",
                    "secretKey": "$ATELIER_S3_SECRET_ACCESS_KEY"}],
   "actions": ["Read:$b", "Write:$b", "List:$b", "Tagging:$b"]}
]}
EOF
umask 022

# 1 GiB volumes, as many as the disk holds (the default, 8 of 30 GiB, runs out of volumes
# long before it runs out of disk).
weed server -dir="$data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3 -s3.ip.bind=0.0.0.0 -s3.port=8333 -s3.config="$data/s3-identities.json" \
  -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.telemetry=false -master.volumeSizeLimitMB=1024 -volume.max=0 "$@" &
server=$!
trap 'kill -TERM "$server"; wait "$server"; exit 0' TERM INT

# `weed shell` waits on a filer that is still starting: bound each try.
tries=0
until echo "s3.bucket.create -name $b" | timeout 10 weed shell -master=127.0.0.1:9333 2>&1 \
    | grep -q -E "created bucket|already exists"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ] || ! kill -0 "$server" 2>/dev/null; then
    echo "could not create bucket $b" >&2
    exit 1
  fi
  sleep 1
done
touch "$ready"
echo "bucket $b ready for $ATELIER_S3_ACCESS_KEY_ID"
wait "$server"
