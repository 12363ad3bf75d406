#!/usr/bin/env bash
# The main job on one machine: a bootstrap ping-monitor on 127.0.0.1:4001 (metrics on :9100) and
# two peers that join it; prints the RTTs the bootstrap measures, as Prometheus scrapes them.
# Usage: scripts/demo.sh [--duration SECONDS]   (default: until Ctrl-C)
source "$(dirname "$0")/lib/toolchain.sh"
cd "$PHYSARUM_ROOT"

duration=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="${2:?--duration needs a number of seconds}"; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) log "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
done
[[ "$duration" =~ ^[0-9]+$ ]] || { log "--duration: '$duration' is not a whole number of seconds"; exit 2; }

work="$(mktemp -d)"
pids=()
stop() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

# a fresh overlay: its passphrase reaches the daemons through the environment, never argv
PHYSARUM_PSK="demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export PHYSARUM_PSK

monitor() { # name, extra args...
  local name="$1"; shift
  node packages/ping-monitor/bin/ping-monitor.js --ephemeral --hostname "$name" --interval 1s "$@" > "$work/$name.log" 2>&1 &
  pids+=("$!")
}

wait_for_line() { # file, prefix
  for _ in $(seq 200); do
    grep -m1 "^$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  log "no '$2' line in $1:"; cat "$1" >&2; exit 1
}

monitor demo-bootstrap --listen /ip4/127.0.0.1/tcp/4001 --metrics-listen 127.0.0.1:9100
bootstrap="$(wait_for_line "$work/demo-bootstrap.log" 'ping-monitor listening: ' | sed 's/^ping-monitor listening: //')"
log "bootstrap: $bootstrap"
for peer in demo-peer-1 demo-peer-2; do
  monitor "$peer" --bootstrap "$bootstrap" --listen /ip4/127.0.0.1/tcp/0 --metrics-listen 127.0.0.1:0
done
log "metrics: http://127.0.0.1:9100/metrics, peers: http://127.0.0.1:9100/peers (Ctrl-C stops)"

started=$SECONDS
while [ "$duration" -eq 0 ] || [ $((SECONDS - started)) -lt "$duration" ]; do
  sleep 2
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { log "a daemon stopped; its logs are:"; tail -n 20 "$work"/*.log >&2; exit 1; }
  done
  node -e '
    fetch("http://127.0.0.1:9100/metrics").then(r => r.text()).then(text => {
      const lines = text.split("\n").filter(l => l.startsWith("physarum_ping_rtt_seconds{"))
      console.log(new Date().toISOString().slice(11, 19), lines.length === 0 ? "(no RTT measured yet)" : "")
      for (const line of lines) {
        const host = /target_host="([^"]*)"/.exec(line)?.[1], seconds = Number(line.split(" ").pop())
        console.log(`  ${host.padEnd(14)} ${(seconds * 1000).toFixed(3)} ms`)
      }
    }).catch(err => { console.error("metrics unreachable:", err.message); process.exit(1) })'
done
