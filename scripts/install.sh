#!/usr/bin/env bash
# Installs physarum on this host from this checkout, as root (docs/operations.md):
#   - Node >= 24.9 as <prefix>/bin/node: the host's own when new enough, else a copy of Node 24
#     from the npm registry in <prefix>/lib/physarum (readable by the units' service users,
#     unlike a cache under /root);
#   - the workspace's dependencies (pnpm install --frozen-lockfile);
#   - the commands ping-monitor, registry-service, allocator, proxy and hl-cli in <prefix>/bin;
#   - <etc>/physarum.env from configs/physarum.env.example (mode 0600), unless it exists;
#   - the systemd units in <units>, pointed at this checkout and <prefix>/bin/node; none is
#     enabled: which daemons run on which host is the operator's choice, and a host's own flags
#     go in the environment file (PHYSARUM_<DAEMON>_ARGS), which a later run leaves alone;
#   - the system user physarum in the docker group, for the allocator's unit (where Docker is).
# Running it again after `git pull` updates everything but an existing environment file.
# Usage: scripts/install.sh [--prefix /usr/local] [--etc /etc/physarum] [--units /etc/systemd/system] [--no-user]
set -euo pipefail

prefix=/usr/local
etc=/etc/physarum
units=/etc/systemd/system
make_user=1
usage() { sed -n 's/^# Usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; prefix="$2"; shift 2 ;;
    --etc) [ $# -ge 2 ] || usage; etc="$2"; shift 2 ;;
    --units) [ $# -ge 2 ] || usage; units="$2"; shift 2 ;;
    --no-user) make_user=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage ;;
  esac
done

export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
root="$(cd "$(dirname "$0")/.." && pwd)"
# the units name these paths in ExecStart, where systemd splits on white space and reads % as a
# specifier
for path in "$root" "$prefix" "$etc"; do
  if [[ "$path" =~ [[:space:]%\\|\&] ]]; then
    echo "install.sh: $path: a path the units name may not hold white space or % \\ | &" >&2
    exit 2
  fi
done
if [[ "$root" == /root/* || "$root" == /home/* ]]; then
  echo "install.sh: warning: the units cannot read $root (ProtectHome=yes hides /root and /home): clone physarum to /opt/physarum" >&2
fi

source "$root/scripts/lib/toolchain.sh"
cd "$PHYSARUM_ROOT"

# Node: the one the toolchain found or brought, where every user can run it. One that only its
# owner can reach (under /root, or a link there made by hand earlier) is copied out.
node_bin="$prefix/bin/node"
mkdir -p "$prefix/bin"
found="$(readlink -f "$(command -v node)")"
if setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$found"; then
  if [ "$found" != "$(readlink -f "$node_bin" 2>/dev/null || true)" ]; then
    ln -sfn "$found" "$node_bin"
  fi
else
  mkdir -p "$prefix/lib/physarum"
  install -m 0755 "$found" "$prefix/lib/physarum/node.new"
  mv -f "$prefix/lib/physarum/node.new" "$prefix/lib/physarum/node"
  ln -sfn "$prefix/lib/physarum/node" "$node_bin"
fi
log "node: $node_bin -> $(readlink -f "$node_bin") ($("$node_bin" --version))"

for daemon in ping-monitor registry-service allocator proxy hl-cli; do
  ln -sfn "$PHYSARUM_ROOT/packages/$daemon/bin/$daemon.js" "$prefix/bin/$daemon"
done
log "commands: $prefix/bin/{ping-monitor,registry-service,allocator,proxy,hl-cli}"

mkdir -p "$etc"
chmod 0700 "$etc"
if [ -e "$etc/physarum.env" ]; then
  log "kept $etc/physarum.env"
else
  install -m 0600 configs/physarum.env.example "$etc/physarum.env"
  log "wrote $etc/physarum.env: set PHYSARUM_PSK in it before starting a daemon"
fi

mkdir -p "$units"
for unit in configs/systemd/*.service; do
  sed -e "s|/usr/local/bin/node|$node_bin|g" -e "s|/opt/physarum/|$PHYSARUM_ROOT/|g" \
    -e "s|/etc/physarum/physarum.env|$etc/physarum.env|g" "$unit" > "$units/$(basename "$unit")"
done
log "units: $units/physarum-*.service (replaced at every run: keep a host's own flags in PHYSARUM_<DAEMON>_ARGS in $etc/physarum.env)"
if [ "$units" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

if [ "$make_user" = 1 ]; then
  if ! getent group docker >/dev/null; then
    log "no docker group: on a host that runs the allocator, install docker.io and run this again"
  elif ! id physarum >/dev/null 2>&1; then
    useradd --system --groups docker --no-create-home --shell /usr/sbin/nologin physarum
    log "created the system user physarum (group docker) for the allocator"
  fi
fi
log "installed; next: docs/operations.md, from \"The overlay's key\""
