#!/usr/bin/env bash
# The bulkhead demo: installs what is missing, builds, then runs the agent in
# throwaway network namespaces — a hypervisor, two workloads (billing-1:
# prod, devtool-1: dev) and a server — pushes policies/demo to it with the
# CLI, and prints which flows were allowed and which denied. Needs root (network namespaces).
# Touches nothing outside the namespaces it makes, and removes them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (it makes network namespaces): sudo $0" >&2
  exit 1
fi

./packaging/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target bulkhead bulkhead-agent >/dev/null

id=$$
hv=bhdemo-hv-$id; bill=bhdemo-billing-$id; dev=bhdemo-devtool-$id; srv=bhdemo-server-$id
work=$(mktemp -d /tmp/bhdemo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in $hv $bill $dev $srv; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- the test host: routed /32 and /128 links through the hypervisor -------
for n in $hv $bill $dev $srv; do ip netns add "$n"; nsx "$n" ip link set lo up; done
nsx $hv sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
nsx $hv ip addr add 203.0.113.1/32 dev lo          # the hypervisor's own address
attach() {  # attach NS IFACE V4 V6...: host-side veth IFACE in hv, eth0 in NS
  local ns=$1 ifc=$2 v4=$3; shift 3
  nsx $hv ip link add "$ifc" type veth peer name eth0 netns "$ns"
  nsx $hv ip link set "$ifc" up
  nsx $hv ip addr add 192.0.2.1/32 dev "$ifc"
  nsx $hv ip -6 addr add fe80::1/64 dev "$ifc" nodad
  nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.eth0.accept_dad=0
  nsx "$ns" ip link set eth0 up
  nsx "$ns" ip route add 192.0.2.1 dev eth0
  nsx "$ns" ip route add default via 192.0.2.1 dev eth0
  nsx "$ns" ip -6 route add default via fe80::1 dev eth0
  for a in "$v4" "$@"; do
    if [[ $a == *:* ]]; then
      nsx "$ns" ip -6 addr add "$a/128" dev eth0 nodad; nsx $hv ip -6 route add "$a/128" dev "$ifc"
    else
      nsx "$ns" ip addr add "$a/32" dev eth0; nsx $hv ip route add "$a/32" dev "$ifc"
    fi
  done
}
attach $bill vbill1 192.0.2.10 2001:db8:2::10
attach $dev vdev1 192.0.2.20 2001:db8:2::20
attach $srv vsrv1 198.51.100.10 198.51.100.53 2001:db8:10::10

# --- services: postgres on the server, dns, and ssh on server and hypervisor -
listen() { local ns=$1; shift; ip netns exec "$ns" socat "$@" SYSTEM:'echo ok' >/dev/null 2>&1 & pids+=($!); }
listen $srv TCP4-LISTEN:5432,fork,reuseaddr
listen $srv TCP6-LISTEN:5432,fork,reuseaddr,ipv6only=1
listen $srv TCP4-LISTEN:22,fork,reuseaddr
listen $srv UDP4-RECVFROM:53,bind=198.51.100.53,fork,reuseaddr
listen $hv TCP4-LISTEN:22,fork,reuseaddr

# --- the agent, in the hypervisor namespace; policy pushed over its API ----
sock="unix://$work/agent.sock"
# A stand-in SIEM: a UDP syslog receiver on the hypervisor's loopback.
nsx $hv socat -u UDP4-RECV:5514,bind=127.0.0.1 OPEN:"$work/siem.log",creat,append >/dev/null 2>&1 &
pids+=($!)
nsx $hv "$root/build/bulkhead-agent" --listen "$sock" --state-dir "$work/state" \
  --syslog udp://127.0.0.1:5514 2>"$work/agent.log" &
pids+=($!)
bh() { "$root/build/bulkhead" --agent "$sock" "$@"; }
for _ in $(seq 100); do bh status >/dev/null 2>&1 && break; sleep 0.05; done
echo "== bulkhead push policies/demo:"
bh push "$root/policies/demo" | sed 's/^/   /'
echo
echo "== bulkhead workload ls:"
bh workload ls | sed 's/^/   /'
echo
sleep 0.2
echo "== bulkhead-agent's log:"
sed 's/^/   /' "$work/agent.log"
echo

# --- flows ---------------------------------------------------------------
failures=0
flow() {  # flow FROM-NS LABEL EXPECT WHY socat-address...
  local ns=$1 label=$2 expect=$3 why=$4 target=$5 extra=${6:-}
  local start end ms got
  start=$(date +%s%N)
  if [[ $target == UDP* ]]; then
    out=$(echo hi | timeout 4 ip netns exec "$ns" socat -T1.5 - "$target" 2>&1 || true)
  else
    out=$(timeout 4 ip netns exec "$ns" socat -T1.5 - "$target,connect-timeout=1.5" </dev/null 2>&1 || true)
  fi
  end=$(date +%s%N); ms=$(( (end - start) / 1000000 ))
  if [[ $out == *ok* ]]; then got=ALLOWED; else got=DENIED; fi
  local mark="  "
  if [ "$got" != "$expect" ]; then mark="!!"; failures=$((failures + 1)); fi
  printf '%s %-8s %-46s %6d ms  %s\n' "$mark" "$got" "$label" "$ms" "$why"
}
echo "== flows (each is a real connection attempt):"
flow $bill "billing-1 -> postgres-prod 198.51.100.10:5432" ALLOWED "App billing egress" TCP4:198.51.100.10:5432
flow $bill "billing-1 -> postgres-prod [2001:db8:10::10]:5432" ALLOWED "App billing egress (IPv6)" "TCP6:[2001:db8:10::10]:5432"
flow $bill "billing-1 -> dns 198.51.100.53:53/udp" ALLOWED "GlobalPolicy baseline allow" UDP4:198.51.100.53:53
flow $bill "billing-1 -> 198.51.100.10:22 (ssh)" DENIED "default deny, reject: fails at once" TCP4:198.51.100.10:22
flow $bill "billing-1 -> hypervisor 203.0.113.1:22" DENIED "workload to host is policed too" TCP4:203.0.113.1:22
flow $dev "devtool-1 -> postgres-prod 198.51.100.10:5432" DENIED "GlobalPolicy dev->prod deny beats its allow (drop: times out)" TCP4:198.51.100.10:5432
flow $dev "devtool-1 -> dns 198.51.100.53:53/udp" ALLOWED "GlobalPolicy baseline allow" UDP4:198.51.100.53:53
flow $hv "hypervisor itself -> 198.51.100.10:22" ALLOWED "the host's own traffic is never touched" TCP4:198.51.100.10:22
echo
sleep 0.5
echo "== denied flows as the SIEM received them (RFC 5424 over UDP):"
# One datagram per event, no newline between them: split for reading.
sed 's/<1[0-9][0-9]>1 /\n&/g' "$work/siem.log" | sed '/^$/d; s/^/   /'
echo
echo "== bulkhead status:"
bh status | sed 's/^/   /'
echo
echo "== denied attempts counted by the kernel (nft list table inet bulkhead):"
nsx $hv nft list table inet bulkhead | grep -E 'counter packets [1-9]' | sed -E 's/^\s+/   /'
echo
if [ $failures -gt 0 ]; then
  echo "demo: $failures flow(s) did not behave as the policy says" >&2
  exit 1
fi
echo "demo: every flow behaved as policies/demo says. See 'build/bulkhead plan policies/demo' for the ruleset."
