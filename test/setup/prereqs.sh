#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent: each step is skipped when its
# tool is already there. Run as root (CI runs as root).
set -euo pipefail

need_apt=()
for pair in wireguard-go:wireguard-go wg:wireguard-tools ip:iproute2 iptables:iptables iperf3:iperf3 dig:dnsutils \
  make:make g++:g++ python3:python3 ping:iputils-ping; do
  tool=${pair%%:*} pkg=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$pkg")
done

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "prereqs: missing ${need_apt[*]} and not root; install them or run as root" >&2
    exit 1
  fi
  echo "prereqs: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# The npm dependencies (also builds the native TUN addon through node-gyp).
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -f "$here/node_modules/.package-lock.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ] \
  || [ ! -f "$here/native/build/Release/trellis_tun.node" ]; then
  echo "prereqs: npm ci"
  (cd "$here" && ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
echo "prereqs: ok"
