#!/usr/bin/env bash
# Installs every Debian package bulkhead's build, tests and demo need.
# Idempotent: installs only what is missing. Needs root (apt-get).
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format
  libnftnl-dev libmnl-dev libnetfilter-conntrack-dev libyaml-cpp-dev libyaml-dev libspdlog-dev libfmt-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  nftables iproute2 socat rsyslog iputils-ping openssl procps
  ulogd2 ulogd2-json conntrack
  libsystemd-dev systemd libseccomp-dev
  # The Debian package and its tests: cpack's dependency scan (dpkg-shlibdeps,
  # file), the maintainer scripts' tools, man page and completion checks,
  # rsyslog's TLS driver for the SIEM snippet.
  dpkg-dev file passwd init-system-helpers groff-base bash-completion
  rsyslog-openssl
  # The orchestration hooks: JSON (CNI), XML (libvirt), and the real CNI
  # plugins their tests drive.
  nlohmann-json3-dev libxml2-dev containernetworking-plugins
  # The hooks' HTTP/2 client (linked from its static archive).
  libnghttp2-dev
  # suggest/graph: Graphviz renders SVG; xmllint checks it in the tests.
  graphviz libxml2-utils
  # The command line's parser and help (header-only).
  libcli11-dev
  # The benchmarks' second baseline (legacy iptables + ipset) and their
  # report (tests/bench/run-all.sh: jq merges the figures, gnuplot plots).
  iptables ipset jq gnuplot-nox
  # The controller's optional etcd store: the server its tests start, etcdctl,
  # and the .proto files the etcd client's stubs are generated from.
  etcd-server etcd-client golang-etcd-server-dev
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
# Install, but start no daemon: rsyslog and ulogd2 are run by the tests and
# benchmarks themselves, inside their own namespaces. policy-rc.d exiting 101
# is Debian's way to tell maintainer scripts not to start services.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
