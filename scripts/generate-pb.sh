#!/usr/bin/env bash
# Compiles .proto files with protons into JavaScript beside them (x.proto -> x.js + x.d.ts).
# protons emits TypeScript namespaces and enums, which Node's type stripping cannot run, so the
# output is compiled once here and committed; the .proto stays the source of truth.
# Usage: scripts/generate-pb.sh [file.proto ...]   (default: every .proto under packages/)
source "$(dirname "$0")/lib/toolchain.sh"
cd "$PHYSARUM_ROOT"
mapfile -t protos < <(if [ $# -gt 0 ]; then printf '%s\n' "$@"; else git ls-files 'packages/*.proto'; fi)
for proto in "${protos[@]}"; do
  ts="${proto%.proto}.ts"
  node_modules/.bin/protons "$proto"
  node_modules/.bin/tsc "$ts" --declaration --module nodenext --moduleResolution nodenext --target es2024 \
    --ignoreConfig --noCheck --skipLibCheck --outDir "$(dirname "$proto")"
  rm "$ts"
  log "generated ${proto%.proto}.js and .d.ts"
done
