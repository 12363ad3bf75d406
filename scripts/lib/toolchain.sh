# Sourced by the scripts in scripts/: brings Node >= 22 and the pinned pnpm onto PATH and installs
# the workspace's dependencies. On a machine whose Node is older (Debian ships 20, on which
# libp2p 3 crashes), Node 24 comes from the npm registry's `node` package into a cache folder.
set -euo pipefail

PHYSARUM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PHYSARUM_TOOLCHAIN="${PHYSARUM_TOOLCHAIN:-${XDG_CACHE_HOME:-$HOME/.cache}/physarum/toolchain}"
NODE_PACKAGE="node@24"
PNPM_VERSION="$(sed -n 's/.*"packageManager": *"pnpm@\([^"]*\)".*/\1/p' "$PHYSARUM_ROOT/package.json")"

log() { printf '[physarum] %s\n' "$*" >&2; }

# Node >= 24.9: TypeScript sources run directly (type stripping without a flag, from 22.18), and
# the proxy's server chooses which upgrades it takes (shouldUpgradeCallback, from 24.9)
node_ok() {
  "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 24 || (a === 24 && b >= 9) ? 0 : 1)' 2>/dev/null
}

ensure_node() {
  if command -v node >/dev/null && node_ok node; then
    return
  fi
  local cached="$PHYSARUM_TOOLCHAIN/node_modules/node/bin/node"
  if [ ! -x "$cached" ] || ! node_ok "$cached"; then
    command -v npm >/dev/null || { log "npm is needed to fetch Node 24: install Debian's nodejs and npm"; exit 1; }
    log "installing $NODE_PACKAGE into $PHYSARUM_TOOLCHAIN (this machine has Node $(node --version 2>/dev/null || echo none))"
    mkdir -p "$PHYSARUM_TOOLCHAIN"
    npm install --prefix "$PHYSARUM_TOOLCHAIN" --no-save --no-audit --no-fund --loglevel=error "$NODE_PACKAGE" >&2
  fi
  export PATH="$PHYSARUM_TOOLCHAIN/node_modules/node/bin:$PATH"
}

ensure_pnpm() {
  local dir="$PHYSARUM_TOOLCHAIN/pnpm-$PNPM_VERSION"
  if [ ! -x "$dir/node_modules/.bin/pnpm" ]; then
    log "installing pnpm $PNPM_VERSION into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "pnpm@$PNPM_VERSION" >&2
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
}

ensure_dependencies() {
  log "node $(node --version), pnpm $(pnpm --version): installing the workspace's dependencies"
  (cd "$PHYSARUM_ROOT" && pnpm install --frozen-lockfile --reporter=append-only >&2)
}

ensure_node
ensure_pnpm
ensure_dependencies
