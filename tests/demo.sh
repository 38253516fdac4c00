#!/usr/bin/env bash
# The bulkhead demo: installs what is missing, builds, then runs a small
# fleet in throwaway network namespaces — a bulkhead-controller, two
# hypervisors (hv01, hv02) each with its bulkhead-agent, three workloads on
# hv01 (billing-1: prod, devtool-1: dev, reporting-1: a new app in audit
# mode), payments-1 on hv02 and a server — pushes policies/demo to the
# controller with the CLI, and prints which flows were allowed and which
# denied, and billing-1's cross-host allow to payments-1 appearing the
# moment payments-1 registers on hv02. Then billing-1 sweeps port 22 across the network
# and is quarantined automatically, and `bulkhead suggest` turns
# reporting-1's audited flows into a policy. Needs root (network namespaces).
# Touches nothing outside the namespaces it makes, and removes them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (it makes network namespaces): sudo $0" >&2
  exit 1
fi

# BULKHEAD_DEMO_BUILD=DIR: use the binaries already built in DIR (how CTest
# runs the demo, as `demo.readme`); otherwise install what is missing and
# build into ./build.
bin=${BULKHEAD_DEMO_BUILD:-}
if [ -z "$bin" ]; then
  ./packaging/install-deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" --target bulkhead bulkhead-agent bulkhead-controller >/dev/null
  bin=$root/build
fi

id=$$
hv=bhdemo-hv-$id; bill=bhdemo-billing-$id; dev=bhdemo-devtool-$id; srv=bhdemo-server-$id
rep=bhdemo-report-$id; hv2=bhdemo-hv2-$id; pay=bhdemo-pay-$id
work=$(mktemp -d /tmp/bhdemo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in $hv $bill $dev $srv $rep $hv2 $pay; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- the test host: routed /32 and /128 links through the hypervisor -------
for n in $hv $bill $dev $srv $rep $hv2 $pay; do ip netns add "$n"; nsx "$n" ip link set lo up; done
nsx $hv sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
nsx $hv ip addr add 203.0.113.1/32 dev lo          # the hypervisor's own address
attach() {  # [on=HV] attach NS IFACE V4 V6...: host-side veth IFACE in HV (hv01), eth0 in NS
  local hv=${on:-$hv}
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
attach $rep vrep1 192.0.2.30
# hv02: a second hypervisor, one routed link away (203.0.113.2), with
# payments-1 on it.
nsx $hv2 sysctl -qw net.ipv4.ip_forward=1
nsx $hv2 ip addr add 203.0.113.2/32 dev lo
nsx $hv ip link add fab0 type veth peer name fab0 netns $hv2
nsx $hv ip link set fab0 up; nsx $hv2 ip link set fab0 up
nsx $hv ip route add 203.0.113.2/32 dev fab0
nsx $hv2 ip route add 203.0.113.1/32 dev fab0
nsx $hv2 ip route add default via 203.0.113.1 dev fab0
on=$hv2 attach $pay vpay1 192.0.2.40
nsx $hv ip route add 192.0.2.40/32 via 203.0.113.2 dev fab0
# The server also answers on 198.51.100.11-40: the hosts of a network to sweep.
attach $srv vsrv1 198.51.100.10 198.51.100.53 2001:db8:10::10 $(seq -f '198.51.100.%g' 11 40)

# --- services: postgres on the server, dns, and ssh on server and hypervisor -
# The answering shell reads to the client's EOF, and socat waits up to 5 s for
# it: a shell that exits before socat relays, or starts late, loses the "ok".
listen() { local ns=$1; shift; ip netns exec "$ns" socat -t5 "$@" SYSTEM:'echo ok; exec cat >/dev/null' >/dev/null 2>&1 & pids+=($!); }
listen $srv TCP4-LISTEN:5432,fork,reuseaddr
listen $srv TCP6-LISTEN:5432,fork,reuseaddr,ipv6only=1
listen $srv TCP4-LISTEN:22,fork,reuseaddr
listen $srv UDP4-RECVFROM:53,bind=198.51.100.53,fork,reuseaddr
listen $hv TCP4-LISTEN:22,fork,reuseaddr
listen $pay TCP4-LISTEN:8443,fork,reuseaddr
# On a busy machine socat takes a moment to bind: wait for every listener.
for _ in $(seq 100); do
  [ "$(nsx $srv ss -Hltn | grep -cE ':(5432|22) ')" -ge 3 ] && nsx $srv ss -Hlun | grep -q ':53 ' &&
    nsx $hv ss -Hltn | grep -q ':22 ' && nsx $pay ss -Hltn | grep -q ':8443 ' && break
  sleep 0.05
done

# --- the controller, an agent per hypervisor; policy pushed to the controller
# Agents dial the controller (here over a unix socket; across machines
# tcp:// with mutual TLS) and get the bundle and the other host's workloads
# their apps can select.
ctl="unix://$work/controller.sock"
"$bin/bulkhead-controller" --listen "$ctl" --state-dir "$work/ctl-state" \
  2>"$work/controller.log" &
pids+=($!)
sock="unix://$work/agent.sock"
sock2="unix://$work/agent2.sock"
# A stand-in SIEM: a UDP syslog receiver on the hypervisor's loopback.
nsx $hv socat -u UDP4-RECV:5514,bind=127.0.0.1 OPEN:"$work/siem.log",creat,append >/dev/null 2>&1 &
pids+=($!)
# --auto-quarantine: a workload caught scanning is quarantined at once.
nsx $hv "$bin/bulkhead-agent" --listen "$sock" --state-dir "$work/state" \
  --syslog udp://127.0.0.1:5514 --auto-quarantine --controller "$ctl" --host hv01 \
  2>"$work/agent.log" &
pids+=($!)
nsx $hv2 "$bin/bulkhead-agent" --listen "$sock2" --state-dir "$work/state2" \
  --controller "$ctl" --host hv02 2>"$work/agent2.log" &
pids+=($!)
bh() { "$bin/bulkhead" --agent "$sock" "$@"; }
bhc() { "$bin/bulkhead" --controller "$ctl" "$@"; }
for _ in $(seq 200); do
  [ "$(bhc status --json 2>/dev/null | grep -o '"connected": true' | wc -l)" -eq 2 ] && break
  sleep 0.05
done
# A new app, reporting, runs in audit mode: nothing is blocked, every flow
# the policy would deny is reported; its policy is suggested at the end.
cat > "$work/reporting.yaml" <<'YAML'
apiVersion: bulkhead/v1
kind: App
metadata: {name: reporting, labels: {env: prod}}
spec:
  mode: audit
YAML
# Every event as JSON lines, as a SIEM would store them: suggest's input.
"$bin/bulkhead" --agent "$sock" flows --follow --json >"$work/flows.jsonl" 2>/dev/null &
pids+=($!)
# In a fleet the bundle is the same on every host, so workloads are
# registered on their host (as orchestration does), not listed in the bundle:
# the controller sends each host the other hosts' workloads its apps select.
echo "== bulkhead push --controller --wait (policies/demo's apps and services, and the audit-mode app reporting):"
bhc push "$root/policies/demo/apps.yaml" "$root/policies/demo/services.yaml" \
  "$work/reporting.yaml" --wait | sed 's/^/   /'
echo
echo "== bulkhead workload add, on hv01:"
bh workload add billing-1 --app billing --iface vbill1 --addr 192.0.2.10 --addr 2001:db8:2::10 |
  sed 's/^/   /'
bh workload add devtool-1 --app devtool --iface vdev1 --addr 192.0.2.20 --addr 2001:db8:2::20 |
  sed 's/^/   /'
bh workload add reporting-1 --app reporting --iface vrep1 --addr 192.0.2.30 | sed 's/^/   /'
echo
echo "== bulkhead status --controller:"
bhc status | sed 's/^/   /'
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
    out=$(echo hi | timeout 4 ip netns exec "$ns" socat -T1.5 -t1.5 - "$target" 2>&1 || true)
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
flow $rep "reporting-1 -> postgres-prod 198.51.100.10:5432" ALLOWED "audit mode: allowed, reported" TCP4:198.51.100.10:5432
flow $rep "reporting-1 -> 198.51.100.10:22 (ssh)" ALLOWED "audit mode: allowed, reported" TCP4:198.51.100.10:22
echo

# --- across hosts: payments-api selects app payments, wherever it runs -------
echo "== billing-1 (hv01) -> payments-1 (hv02, 192.0.2.40:8443) through payments-api {app: payments}:"
flow $bill "billing-1 -> payments-1 192.0.2.40:8443" DENIED "payments-1 not registered on hv02 yet" TCP4:192.0.2.40:8443
start=$(date +%s%N)
"$bin/bulkhead" --agent "$sock2" workload add payments-1 --app payments --iface vpay1 \
  --addr 192.0.2.40 | sed 's/^/   /'
for _ in $(seq 200); do
  out=$(timeout 2 ip netns exec $bill socat -T0.2 - TCP4:192.0.2.40:8443,connect-timeout=0.2 </dev/null 2>&1 || true)
  [[ $out == *ok* ]] && break
  sleep 0.005
done
echo "   hv01 allows it $(( ($(date +%s%N) - start) / 1000000 )) ms after 'workload add' on hv02 began"
flow $bill "billing-1 -> payments-1 192.0.2.40:8443" ALLOWED "remote workload in payments-api's set on hv01" TCP4:192.0.2.40:8443
echo
echo "== bulkhead workload ls --controller (the fleet):"
bhc workload ls | sed 's/^/   /'
echo
echo "== bulkhead workload ls on hv01 (payments-1 is hv02's, sent by the controller):"
bh workload ls | sed 's/^/   /'
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
# --- a compromised workload scans the network --------------------------------
echo "== billing-1 is compromised: it tries port 22 on 30 addresses (198.51.100.11-40)"
start=$(date +%s%N)
sweep=()
for i in $(seq 11 40); do
  nsx $bill timeout 2 socat -T1 - TCP4:198.51.100.$i:22,connect-timeout=1 </dev/null >/dev/null 2>&1 &
  sweep+=($!)
done
for _ in $(seq 200); do bh quarantine ls | grep -q billing-1 && break; sleep 0.01; done
echo "   quarantined $(( ($(date +%s%N) - start) / 1000000 )) ms after the sweep began"
wait "${sweep[@]}" 2>/dev/null || true
echo
echo "== bulkhead quarantine ls:"
bh quarantine ls | sed 's/^/   /'
echo
echo "== the anomaly and quarantine events (as the SIEM received them):"
sleep 0.3
sed 's/<1[0-9][0-9]>1 /\n&/g' "$work/siem.log" | grep -E 'ANOMALY|QUARANTINE' | sed '/^$/d; s/^/   /'
echo
echo "== billing-1's allowed traffic stops too:"
flow $bill "billing-1 -> postgres-prod 198.51.100.10:5432" DENIED "quarantined (auto/scan/hosts, 30 min)" TCP4:198.51.100.10:5432
echo

# --- a policy for the audit-mode app, from what it did -----------------------
echo "== bulkhead suggest flows.jsonl --policies policies/demo --app reporting:"
"$bin/bulkhead" suggest "$work/flows.jsonl" --policies "$root/policies/demo" \
  --policies "$work/reporting.yaml" --app reporting 2>"$work/suggest.err" | sed 's/^/   /'
sed 's/^/   /' "$work/suggest.err"
echo

if [ $failures -gt 0 ]; then
  echo "demo: $failures flow(s) did not behave as the policy says" >&2
  exit 1
fi
echo "demo: every flow behaved as policies/demo says. See 'build/bulkhead plan policies/demo' for the ruleset."
