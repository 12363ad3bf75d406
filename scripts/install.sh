#!/usr/bin/env bash
# Installs physarum on this host from this checkout, as root (docs/operations.md):
#   - Node >= 24.9 as <prefix>/lib/physarum/node: a link to the host's own when new enough, else
#     a copy of Node 24 from the npm registry (readable by the units' service users, unlike a
#     cache under /root). <prefix>/bin/node, the host's own or none, is left alone;
#   - the workspace's dependencies (pnpm install --frozen-lockfile), checked to be readable by an
#     unprivileged user as the units' users must read them;
#   - the commands ping-monitor, registry-service, allocator, proxy and hl-cli in <prefix>/bin:
#     small scripts that run this checkout with that Node, whatever Node is first on PATH. A file
#     of that name that is not one of them stops the install before it changes anything;
#   - <etc>/physarum.env from configs/physarum.env.example (mode 0600), unless it exists (it warns
#     when the existing one may be read by other users);
#   - the systemd units in <units>, pointed at this checkout and <prefix>/lib/physarum/node; none
#     is enabled: which daemons run on which host is the operator's choice, and a host's own
#     flags go in the environment file (PHYSARUM_<DAEMON>_ARGS), which a later run leaves alone;
#   - the system user physarum in the docker group, for the allocator's unit (where Docker is).
# Running it again after `git pull` updates everything but an existing environment file.
# docs/operations.md, "Uninstall", lists what to remove to take it all away.
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

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run it as root (it checks what the units' users can read as user nobody, and creates the user physarum)" >&2
  exit 1
fi
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
# relative to where it is run: it works in the checkout, and systemd takes only absolute paths
[[ "$prefix" == /* ]] || prefix="$PWD/$prefix"
[[ "$etc" == /* ]] || etc="$PWD/$etc"
[[ "$units" == /* ]] || units="$PWD/$units"
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

commands=(ping-monitor registry-service allocator proxy hl-cli)
# A command in <prefix>/bin is ours when this script wrote it (its second line says so), or when an
# earlier version linked it to a checkout's bin file; anything else is the operator's, and stays.
marker() { printf "# physarum's %s, written by scripts/install.sh (run it again to update it)" "$1"; }
ours() {
  local file="$prefix/bin/$1"
  if [ -L "$file" ]; then
    [[ "$(readlink "$file")" == */packages/"$1"/bin/"$1".js ]]
  else
    [ ! -e "$file" ] || [ "$(sed -n 2p "$file" 2>/dev/null)" = "$(marker "$1")" ]
  fi
}
foreign=()
for command in "${commands[@]}"; do
  ours "$command" || foreign+=("$prefix/bin/$command")
done
if [ ${#foreign[@]} -gt 0 ]; then
  echo "install.sh: ${foreign[*]}: not installed by physarum, and left as they are; nothing was installed. Move them away (or give another --prefix), then run this again" >&2
  exit 1
fi

# what it writes (the dependencies among it) must be readable by the units' users, whatever root's
# umask; files that must not be are given their mode
umask 022
source "$root/scripts/lib/toolchain.sh"
cd "$PHYSARUM_ROOT"

# Node: the one the toolchain found or brought, where every user can run it. One that only its
# owner can reach (under /root) is copied out.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
node_bin="$prefix/lib/physarum/node"
mkdir -p "$prefix/lib/physarum" "$prefix/bin"
found="$(readlink -f "$(command -v node)")"
if [ "$found" = "$(readlink -f "$node_bin" 2>/dev/null || true)" ]; then
  :
elif as_nobody test -x "$found"; then
  ln -sfn "$found" "$node_bin"
else
  install -m 0755 "$found" "$node_bin.new"
  mv -f "$node_bin.new" "$node_bin"
fi
log "node: $node_bin -> $(readlink -f "$node_bin") ($("$node_bin" --version))"

# The units' users (DynamicUser, or physarum) can read no more than nobody can: a checkout cloned,
# or its dependencies installed, under a umask such as 027 would make every daemon fail at start
for command in "${commands[@]}"; do
  if ! failed="$(as_nobody "$node_bin" "$PHYSARUM_ROOT/packages/$command/bin/$command.js" --help 2>&1 >/dev/null)"; then
    echo "install.sh: an unprivileged user (nobody, as the units' users) cannot run $command from $PHYSARUM_ROOT: $(grep -m1 -E 'Error|EACCES' <<< "$failed" || echo "$failed")" >&2
    echo "install.sh: make the checkout and its folders readable by every user (chmod -R o+rX $PHYSARUM_ROOT, and o+x on the folders above it), then run this again" >&2
    exit 1
  fi
done

# written whole under another name first: a command is never half there, and an earlier version's
# link is replaced, not written through
for command in "${commands[@]}"; do
  printf '#!/bin/sh\n%s\nexec '"'%s' '%s'"' "$@"\n' "$(marker "$command")" "$node_bin" "$PHYSARUM_ROOT/packages/$command/bin/$command.js" > "$prefix/bin/$command.new"
  chmod 0755 "$prefix/bin/$command.new"
  mv -f "$prefix/bin/$command.new" "$prefix/bin/$command"
done
log "commands: $prefix/bin/{ping-monitor,registry-service,allocator,proxy,hl-cli}, run with $node_bin"

mkdir -p "$etc"
chmod 0700 "$etc"
if [ -e "$etc/physarum.env" ]; then
  log "kept $etc/physarum.env"
  # the operator's file, and its mode: said, not changed
  mode="$(stat -c %a "$etc/physarum.env")"
  if [ $((8#$mode & 077)) -ne 0 ]; then
    echo "install.sh: warning: $etc/physarum.env (mode $mode) may be read by users other than its owner, and it holds the overlay's key: chmod 600 $etc/physarum.env" >&2
  fi
else
  install -m 0600 configs/physarum.env.example "$etc/physarum.env"
  log "wrote $etc/physarum.env: set PHYSARUM_PSK in it before starting a daemon"
fi

mkdir -p "$units"
for unit in configs/systemd/*.service; do
  sed -e "s|/usr/local/lib/physarum/node|$node_bin|g" -e "s|/opt/physarum/|$PHYSARUM_ROOT/|g" \
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
