#!/usr/bin/env bash
# Installs Debian's prometheus (with promtool) and prometheus-pushgateway when they are missing: as root with
# apt-get, or through sudo when it needs no password. Otherwise says how and fails, so CI never skips the
# monitoring tests silently. Used by `make monitor-deps` and .ci/run.
set -euo pipefail
PACKAGES=(prometheus prometheus-pushgateway)
missing=()
for program in prometheus promtool prometheus-pushgateway; do
    command -v "$program" >/dev/null || missing+=("$program")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "monitoring: prometheus, promtool and prometheus-pushgateway are installed"
    exit 0
fi
echo "monitoring: missing ${missing[*]}; installing ${PACKAGES[*]}"
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "monitoring: not root and no password-less sudo. Install them yourself:" >&2
    echo "    sudo apt-get update && sudo apt-get install --no-install-recommends ${PACKAGES[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "monitoring: no apt-get here; install Prometheus 2.x (with promtool) and the Pushgateway 1.x so that" \
        "prometheus, promtool and prometheus-pushgateway are on PATH" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
