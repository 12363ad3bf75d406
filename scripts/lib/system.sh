# Sourced by scripts that need programs from Debian's packages: installs what is missing.
# ensure_debian_packages "binary:package" ...  (e.g. promtool:prometheus)
ensure_debian_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if ! command -v apt-get >/dev/null; then
    log "missing programs from the Debian packages ${missing[*]}, and this machine has no apt-get: install their equivalents with its package manager, then run this again"
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; install them, then run this again: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
