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

# Headscale (pinned) for the control-plane interop tests: built from the Go module proxy with go install.
# Needs Go >= 1.26.4 (headscale's go.mod); the binary lands in $(go env GOPATH)/bin, where the test helper
# (test/interop/lab/headscale.ts) looks for it after PATH.
HEADSCALE_VERSION=v0.29.2
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "prereqs: go not found (looked on PATH and in /usr/local/go/bin); install Go >= 1.26.4 to build headscale" >&2
  exit 1
fi
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
hs=""
if command -v headscale >/dev/null 2>&1; then
  hs=$(command -v headscale)
elif [ -x "$gobin/headscale" ]; then
  hs="$gobin/headscale"
fi
if [ -z "$hs" ] || ! "$hs" version 2>/dev/null | grep -qF "$HEADSCALE_VERSION"; then
  echo "prereqs: go install headscale@$HEADSCALE_VERSION (${hs:-not installed}; this takes a few minutes)"
  started=$(date +%s)
  hs_mod=github.com/juanfont/headscale
  hs_log=$(mktemp)
  if ! CGO_ENABLED=0 go install "$hs_mod/cmd/headscale@$HEADSCALE_VERSION" 2>"$hs_log"; then
    cat "$hs_log" >&2
    if ! grep -q 'loading deprecation\|@v/list' "$hs_log"; then rm -f "$hs_log"; exit 1; fi
    # `go install m@v` also asks the proxy for m's version list (deprecation check); some proxies refuse that
    # for headscale while serving the pinned version. Retry through a local file proxy that lists only the
    # pinned version (its zip is still verified against sum.golang.org); every other module comes from GOPROXY.
    echo "prereqs: version list refused; retrying through a local proxy pinned to $HEADSCALE_VERSION"
    hs_pin=$(mktemp -d)
    (cd "$hs_pin" && go mod download "$hs_mod@$HEADSCALE_VERSION")
    hs_src="$(go env GOMODCACHE)/cache/download/$hs_mod/@v"
    mkdir -p "$hs_pin/$hs_mod/@v"
    cp "$hs_src/$HEADSCALE_VERSION.info" "$hs_src/$HEADSCALE_VERSION.mod" "$hs_src/$HEADSCALE_VERSION.zip" "$hs_pin/$hs_mod/@v/"
    echo "$HEADSCALE_VERSION" >"$hs_pin/$hs_mod/@v/list"
    GOPROXY="file://$hs_pin,$(go env GOPROXY)" CGO_ENABLED=0 go install "$hs_mod/cmd/headscale@$HEADSCALE_VERSION"
    rm -rf "$hs_pin"
  fi
  rm -f "$hs_log"
  echo "prereqs: headscale $HEADSCALE_VERSION installed in $gobin in $(($(date +%s) - started)) s"
  if [ -n "$hs" ] && [ "$hs" != "$gobin/headscale" ]; then
    echo "prereqs: warning: $hs on PATH shadows $gobin/headscale; remove it or put $gobin first" >&2
  fi
  hs="$gobin/headscale"
fi
echo "prereqs: headscale ok ($("$hs" version 2>/dev/null | head -n1))"
echo "prereqs: ok"
