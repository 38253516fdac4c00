#!/usr/bin/env bash
# Installs every Debian package bulkhead's build, tests and demo need.
# Idempotent: installs only what is missing. Needs root (apt-get).
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format
  libnftnl-dev libmnl-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  nftables iproute2 socat rsyslog iputils-ping openssl procps
  ulogd2 ulogd2-json
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
