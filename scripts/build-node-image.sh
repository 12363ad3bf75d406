#!/usr/bin/env bash
# Builds a small local Node base image without any image registry: a root filesystem holding the
# Node binary this workspace runs on, the shared libraries it links (as ldd lists them) and a
# busybox shell, brought in with `docker import`. The allocator builds its sidecar image FROM it
# (--node-image), and the tests build their service images FROM it.
# Usage: scripts/build-node-image.sh [tag]   (default physarum/node:24; uses DOCKER_HOST if set)
# The Node binary is $PHYSARUM_NODE when set, else the workspace toolchain's.
set -euo pipefail
tag="${1:-physarum/node:24}"
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[physarum] %s\n' "$*" >&2; }

node_bin="${PHYSARUM_NODE:-}"
if [ -n "$node_bin" ] && [ ! -x "$node_bin" ]; then log "PHYSARUM_NODE=$node_bin is not an executable file"; exit 1; fi
if [ -z "$node_bin" ]; then
  # the toolchain brings Node >= 24.9 onto PATH (and installs the workspace's dependencies)
  source "$root_dir/scripts/lib/toolchain.sh"
  node_bin="$(command -v node)"
fi
node_bin="$(readlink -f "$node_bin")"
"$node_bin" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 24 || (a === 24 && b >= 9) ? 0 : 1)' ||
  { log "$node_bin is older than Node 24.9"; exit 1; }

# a static busybox: the shell and the few tools a container needs, with no library of its own
static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }
busybox="$(command -v busybox || true)"
if ! static "${busybox:-/nonexistent}"; then
  busybox=/bin/busybox
  if ! static "$busybox"; then
    PHYSARUM_ROOT="$root_dir"
    source "$root_dir/scripts/lib/system.sh"
    ensure_debian_packages "busybox:busybox-static"
    busybox="$(command -v busybox)"
    static "$busybox" || { log "$busybox is not statically linked: apt-get install busybox-static"; exit 1; }
  fi
fi

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/physarum-node-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,usr/bin,usr/local/bin,tmp,etc,app,proc,sys,dev}
chmod 1777 "$rootfs/tmp"
cp "$node_bin" "$rootfs/usr/local/bin/node"
cp "$busybox" "$rootfs/bin/busybox"
for applet in sh ls cat env sleep kill ps wget; do ln -s busybox "$rootfs/bin/$applet"; done
# scripts starting with #!/usr/bin/env node
ln -s ../../bin/busybox "$rootfs/usr/bin/env"
# the dynamic loader and every library, at the paths ldd resolved them to
ldd "$node_bin" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$rootfs/etc/hosts"

version="$("$node_bin" --version)"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/bin' \
  --change "ENV NODE_VERSION=${version#v}" \
  --change 'WORKDIR /app' \
  --change 'CMD ["node"]' \
  - "$tag" >/dev/null
log "built $tag (node $version, $(du -sh "$rootfs" | cut -f1) uncompressed)"
