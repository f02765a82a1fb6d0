#!/usr/bin/env bash
# Refresh the front-end files the API serves (api/dashboard/static/vendor/) from npm.
# They are committed, so nothing is fetched at run time (docs pages and the dashboard work
# offline); run this only to move to new versions, then update VERSIONS below and the
# table in api/dashboard/static/vendor/README.md, and open both docs pages and a job page.
#   ./deploy/vendor-assets.sh
set -euo pipefail
REDOC=2.5.4            # 2.x: the <redoc spec-url> standalone bundle (3.x is an ES module)
SWAGGER_UI=5.35.0
UPLOT=1.6.32
cd "$(dirname "$0")/.."
vendor=api/dashboard/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "redoc@$REDOC" "swagger-ui-dist@$SWAGGER_UI" "uplot@$UPLOT" >/dev/null)
for tarball in "$work"/*.tgz; do
  mkdir -p "${tarball%.tgz}" && tar xzf "$tarball" -C "${tarball%.tgz}"
done
copy() { mkdir -p "$vendor/$1" && cp "$work/$2/package/$3" "$vendor/$1/"; }
copy redoc "redoc-$REDOC" bundles/redoc.standalone.js
copy redoc "redoc-$REDOC" bundles/redoc.standalone.js.LICENSE.txt
copy redoc "redoc-$REDOC" LICENSE
for file in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  copy swagger-ui "swagger-ui-dist-$SWAGGER_UI" "$file"
done
for file in dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE; do
  copy uplot "uplot-$UPLOT" "$file"
done
echo "vendored redoc $REDOC, swagger-ui-dist $SWAGGER_UI, uplot $UPLOT into $vendor"
