#!/bin/sh
# install-deps.sh - install every Debian 12 package crmsync needs to build, test and run
# the demo. Idempotent; needs root (apt-get). Set CS_SKIP_APT=1 to skip (packages present).
set -eu
[ "${CS_SKIP_APT:-0}" = 1 ] && exit 0
PKGS="
  build-essential cmake pkg-config ca-certificates openssl curl git
  libprotobuf-c-dev protobuf-c-compiler
  libnng-dev libmbedtls-dev libcurl4-openssl-dev libpq-dev libjsmn-dev
  libcmocka-dev
  postgresql postgresql-client
  python3
  clang libclang-rt-14-dev
  yamllint shellcheck
  docker-compose systemd
  podman runc conmon netavark aardvark-dns catatonit iptables mmdebstrap podman-compose
  wrk
  prometheus
  chromium fonts-dejavu-core
"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps: all packages present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing" >&2
  echo "install-deps: run as root (or: sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "install-deps: installed:$missing"
