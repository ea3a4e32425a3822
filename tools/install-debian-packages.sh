#!/usr/bin/env bash
# Installs the server and browser binaries the project runs, from Debian's packages, when they are missing:
# prometheus (with promtool) and prometheus-pushgateway for monitoring, chromium for the UI screenshots. As root
# with apt-get, or through sudo when it needs no password; otherwise says how and fails, so CI never skips those
# tests silently. Used by `make system-deps` and .ci/run.
set -euo pipefail
PACKAGES=(prometheus prometheus-pushgateway chromium)
missing=()
for program in prometheus promtool prometheus-pushgateway chromium; do
    command -v "$program" >/dev/null || missing+=("$program")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: prometheus, promtool, prometheus-pushgateway and chromium are installed"
    exit 0
fi
echo "system packages: missing ${missing[*]}; installing ${PACKAGES[*]}"
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "system packages: not root and no password-less sudo. Install them yourself:" >&2
    echo "    sudo apt-get update && sudo apt-get install --no-install-recommends ${PACKAGES[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "system packages: no apt-get here; install Prometheus 2.x (with promtool) and the Pushgateway 1.x so that" \
        "prometheus, promtool and prometheus-pushgateway are on PATH, and Chromium as chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
