#!/usr/bin/env bash
# The whole test suite, from a fresh clone: brings in Node 24, pnpm, the dependencies and the
# Debian packages the tests use, then type-checks, lints and runs every test.
# Usage: scripts/test.sh [test files...]   (default: all of them)
source "$(dirname "$0")/lib/toolchain.sh"
source "$(dirname "$0")/lib/system.sh"
cd "$PHYSARUM_ROOT"

# curl and ip: the quickstart and multi-host tests; python3: the bcrypt hash of the registry auth test;
# openssl: the etcd TLS certificates; chattr: the etcd pid file made immutable. Every program a
# test runs is here, or in Debian's Essential packages (test/test-sh.spec.ts checks it)
ensure_debian_packages prometheus:prometheus promtool:prometheus etcd:etcd-server \
  dockerd:docker.io docker:docker.io docker-registry:docker-registry busybox:busybox-static \
  curl:curl ip:iproute2 python3:python3 openssl:openssl chattr:e2fsprogs

log "type check"
pnpm run --silent typecheck
log "lint"
pnpm run --silent lint

if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files 'packages/*/test/*.spec.ts' 'test/*.spec.ts')
fi
log "running ${#files[@]} test files"
# one file at a time: several suites time RTTs or move hundreds of megabytes, and two at once on
# two cores make each other's timings meaningless; a file whose failed test left a node or a
# server open must not hold up the files after it, so each ends once its tests have run
node --test --test-reporter=spec --test-concurrency=1 --test-timeout=600000 --test-force-exit "${files[@]}"
