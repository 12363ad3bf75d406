#!/usr/bin/env bash
# The main job on one machine, the seed's flow with every daemon of physarum: a ping-monitor
# (the bootstrap), a registry-service with its own etcd, an allocator on a private Docker
# engine, a local image registry; hl-cli builds, pushes and registers demos/helloworld; then
# `curl 127.0.0.1:4200/hello-world-server` through the proxy reaches an instance allocated on
# demand, and a Prometheus on 127.0.0.1:9090 scrapes the four daemons. Runs as root (dockerd).
# Everything lives in a temporary folder (the logs too) and is stopped and removed on exit.
# Usage: scripts/demo.sh [--duration SECONDS]   in the foreground, until Ctrl-C (or SECONDS)
#        scripts/demo.sh --background           returns once it answers; the daemons keep running
#        scripts/demo.sh stop                   stops a running demo and removes all it made (also
#                                               what a killed one left)
set -euo pipefail
# --help, a bad argument and a user other than root are answered before the toolchain is set up
# (which may fetch Node and the dependencies)
log() { printf '[physarum] %s\n' "$*" >&2; }

pidfile=/run/physarum-demo.pid
output=/run/physarum-demo.out
# the demo's folder, with the pids of its daemons in <folder>/pids: a demo killed with SIGKILL
# cannot stop them itself, and `stop` then does it from there
workfile=/run/physarum-demo.work
# held by the demo from before its setup to its end, with its pid in it: the pid file is written
# only after the setup and the port checks, which a second demo started meanwhile passes as well
lockfile=/run/physarum-demo.lock
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
# what a killed demo left: its folder, still there
left_behind() { [ -f "$workfile" ] && [ -d "$(cat "$workfile")" ]; }

work=
pids=()
cleanup() {
  set +e # every step runs, whatever the one before returned
  [ -n "$work" ] || return 0
  # newest first: the proxy and the daemons end before the engine and registries they use. A pid
  # is signalled only while its command line names the folder: a killed demo's pid may be another
  # process's by now
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid="${pids[i]}"
    [[ "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" == *"$work/"* ]] || continue
    kill "$pid" 2>/dev/null
    # a child is waited for; a killed demo's daemons are not this shell's children
    wait "$pid" 2>/dev/null
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || continue 2; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  # dockerd leaves its network namespace mounted under its exec root
  awk -v d="$work/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$work"
  [ "$(cat "$workfile" 2>/dev/null)" = "$work" ] && rm -f "$workfile"
}

given="$*"
duration=0
background=0
action=run
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="${2:?--duration needs a number of seconds}"; shift 2 ;;
    --background) background=1; shift ;;
    stop) action=stop; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) log "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
done
[[ "$duration" =~ ^[0-9]+$ ]] || { log "--duration: '$duration' is not a whole number of seconds"; exit 2; }
[ "$(id -u)" -eq 0 ] || { log "the demo starts its own dockerd: run it as root: sudo $0${given:+ $given}"; exit 1; }

if [ "$action" = stop ]; then
  if ! running && left_behind; then
    work="$(cat "$workfile")"
    log "the demo was killed before it could stop its daemons: stopping them and removing $work"
    [ -f "$work/pids" ] && mapfile -t pids < "$work/pids"
    cleanup
    rm -f "$pidfile" "$output"
    log "stopped; nothing of it is left"
    exit 0
  fi
  running || { log "no demo is running"; rm -f "$pidfile" "$output" "$workfile"; exit 0; }
  pid="$(cat "$pidfile")"
  log "stopping the demo (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$output"; log "stopped; nothing of it is left"; exit 0; }
    sleep 0.1
  done
  log "the demo (pid $pid) did not stop within 60 s: kill -9 $pid, then run scripts/demo.sh stop again"
  exit 1
fi
if running; then
  log "a demo is already running (pid $(cat "$pidfile")): scripts/demo.sh stop ends it"
  exit 1
fi
if left_behind; then
  log "a demo was killed and left its daemons running in $(cat "$workfile"): scripts/demo.sh stop ends them"
  exit 1
fi

if [ "$background" -eq 1 ]; then
  # the demo itself in a session of its own; its output is shown here until it answers
  : > "$output"
  setsid bash "$0" --duration "$duration" >> "$output" 2>&1 < /dev/null &
  demo=$!
  shown=0
  while :; do
    lines="$(wc -l < "$output")"
    if [ "$lines" -gt "$shown" ]; then sed -n "$((shown + 1)),${lines}p" "$output"; shown="$lines"; fi
    # done once the last line has been shown here (not merely written: lines written after the
    # count above would never be shown)
    head -n "$shown" "$output" | grep -q '^\[physarum\] stop: ' && break
    kill -0 "$demo" 2>/dev/null || { sed -n "$((shown + 1)),\$p" "$output"; rm -f "$output"; exit 1; }
    sleep 0.2
  done
  log "running in the background (pid $demo); its output goes on in $output"
  exit 0
fi
exec 9>> "$lockfile"
if ! flock -n 9; then
  log "another demo (pid $(cat "$lockfile")) is starting on the same ports: wait for it, then scripts/demo.sh stop ends it"
  exit 1
fi
echo $$ > "$lockfile"
source "$(dirname "$0")/lib/toolchain.sh"
source "$(dirname "$0")/lib/system.sh"
cd "$PHYSARUM_ROOT"
ensure_debian_packages dockerd:docker.io etcd:etcd-server docker-registry:docker-registry busybox:busybox-static curl:curl prometheus:prometheus

# Debian's packages start their own etcd (2379, 2380), registry (5000) and Prometheus (9090) on a
# host with systemd: the demo's would fail to bind while the checks below took the others for them
in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=()
for port in 2379 2380 4001 4200 5000 9090 9100 9101 9102 9103; do
  if in_use "$port"; then taken+=("$port"); fi
done
if [ "${#taken[@]}" -gt 0 ]; then
  log "127.0.0.1 port(s) ${taken[*]} already in use; the demo needs them free. Debian's packages start"
  log "services of their own there: systemctl stop etcd docker-registry prometheus"
  exit 1
fi

work="$(mktemp -d /tmp/physarum-demo.XXXXXX)"
stop() {
  cleanup
  [ "$(cat "$pidfile" 2>/dev/null)" = "$$" ] && rm -f "$pidfile"
}
trap stop EXIT
trap 'exit 130' INT TERM
echo $$ > "$pidfile"
echo "$work" > "$workfile"

# a fresh overlay: its passphrase reaches the daemons through the environment, never argv
PHYSARUM_PSK="demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export PHYSARUM_PSK PHYSARUM_LOG_LEVEL=warn

run() { # name, command...: in the background, output in $work/<name>.log
  local name="$1"; shift
  "$@" > "$work/$name.log" 2>&1 9>&- & # the lock is this demo's: a daemon it left does not hold it
  pids+=("$!")
  echo "$!" >> "$work/pids"
}
wait_for() { # what, command...: polls the command for 60 s
  local what="$1"; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "gave up waiting for $what; the logs are in $work:"; tail -n 20 "$work"/*.log >&2; exit 1
}
first_line() { # file, prefix: the rest of the first line starting with prefix
  wait_for "'$2' in $1" grep -q "^$2" "$1"
  grep -m1 "^$2" "$1" | sed "s|^$2||"
}

log "Docker engine (private, in $work)"
export DOCKER_HOST="unix://$work/docker.sock"
run dockerd dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "$DOCKER_HOST" \
  --pidfile "$work/dockerd.pid" --bridge=none --iptables=false
wait_for "dockerd" docker version
log "Node base image (no public registry needed)"
bash scripts/build-node-image.sh physarum/node:24 >&2

log "image registry on 127.0.0.1:5000"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:5000\n' "$work/images" > "$work/registry.yml"
run docker-registry docker-registry serve "$work/registry.yml"
wait_for "docker-registry" curl -sf http://127.0.0.1:5000/v2/

log "ping-monitor: the bootstrap, overlay on 127.0.0.1:4001, metrics on :9100"
run ping-monitor node packages/ping-monitor/bin/ping-monitor.js --state-dir "$work/ping-monitor" \
  --listen /ip4/127.0.0.1/tcp/4001 --metrics-listen 127.0.0.1:9100 --hostname demo
bootstrap="$(first_line "$work/ping-monitor.log" 'ping-monitor listening: ')"
log "  bootstrap: $bootstrap"
export PHYSARUM_BOOTSTRAP="$bootstrap"

cli=(node packages/hl-cli/bin/hl-cli.js --state-dir "$work/hl-cli")
admin="$("${cli[@]}" id)"
log "registry-service with its own etcd (127.0.0.1:2379); writes only from hl-cli ($admin)"
run registry-service node packages/registry-service/bin/registry-service.js --state-dir "$work/registry" \
  --new-etcd-cluster --etcd-ip 127.0.0.1 --listen /ip4/127.0.0.1/tcp/0 --metrics-listen 127.0.0.1:9102 --admin "$admin"
first_line "$work/registry-service.log" 'registry-service listening: ' >/dev/null

log "allocator on the private engine, metrics on :9101"
run allocator node packages/allocator/bin/allocator.js --state-dir "$work/allocator" --node-image physarum/node:24 \
  --listen /ip4/127.0.0.1/tcp/0 --sidecar-listen /ip4/127.0.0.1/tcp/0 --metrics-listen 127.0.0.1:9101 --idle-timeout 5m
first_line "$work/allocator.log" 'allocator listening: ' >/dev/null

log "hl-cli add demos/helloworld as hello-world-server (build, push, register)"
"${cli[@]}" add demos/helloworld/image-conf.json demos/helloworld 127.0.0.1:5000/hello:1.0 hello-world-server \
  --from physarum/node:24

log "proxy on 127.0.0.1:4200, metrics on :9103"
run proxy node packages/proxy/bin/proxy.js 4200 --state-dir "$work/proxy" --listen /ip4/127.0.0.1/tcp/0 --metrics-listen 127.0.0.1:9103
wait_for "the proxy" curl -s -o /dev/null http://127.0.0.1:4200/

log "Prometheus on 127.0.0.1:9090 scraping configs/prometheus.yml's four daemons"
sed 's/localhost:/127.0.0.1:/' configs/prometheus.yml > "$work/prometheus.yml"
run prometheus prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/prometheus" \
  --web.listen-address 127.0.0.1:9090
wait_for "Prometheus" curl -sf http://127.0.0.1:9090/-/ready

log "curl 127.0.0.1:4200/hello-world-server (the first request starts an instance)"
for attempt in $(seq 20); do
  if curl -sf -D "$work/headers" http://127.0.0.1:4200/hello-world-server; then break; fi
  [ "$attempt" -lt 20 ] || { log "no answer; the logs are in $work:"; tail -n 20 "$work"/*.log >&2; exit 1; }
  sleep 1 # the allocator provides its topic in the background right after it starts
done
log "  cold start: $(grep -i x-physarum-cold-start-ms "$work/headers" | tr -d '\r' | cut -d' ' -f2) ms"
log "again (the same instance, warm):"
curl -sf -w '  %{time_total} s\n' http://127.0.0.1:4200/hello-world-server
"${cli[@]}" status || true
log "containers on the allocator's engine:"
docker ps --filter label=io.physarum.service --format '  {{.Names}}  {{.Status}}'
targets_up() { [ "$(curl -sf http://127.0.0.1:9090/api/v1/targets | grep -o '"health":"up"' | wc -l)" -eq 4 ]; }
wait_for "Prometheus to scrape all four daemons" targets_up
log "running, all on 127.0.0.1: ping-monitor (4001, metrics 9100), allocator (9101), registry-service"
log "  with etcd (9102, 2379), proxy (4200, 9103), image registry (5000), Prometheus (9090: all four up),"
log "  a private dockerd; logs in $work/*.log"
log "try: curl 127.0.0.1:4200/hello-world-server"
log "stop: scripts/demo.sh stop (or Ctrl-C in the foreground) stops everything and removes $work"

started=$SECONDS
while [ "$duration" -eq 0 ] || [ $((SECONDS - started)) -lt "$duration" ]; do
  sleep 1
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { log "a daemon stopped; the logs are in $work:"; tail -n 20 "$work"/*.log >&2; exit 1; }
  done
done
