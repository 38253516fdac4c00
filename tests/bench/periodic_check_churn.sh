#!/usr/bin/env bash
# What the agent's periodic drift check costs registrations while they keep
# coming and another program commits in the same namespace (so that every
# check must read the table back). The agent holds the generated
# 10,000-workload bundle (~131,000 set elements, bench_push --write-yaml);
# another program adds an element to a table of its own every 0.5 s; the
# CLI registers and removes workloads in bursts (40 calls ~20 ms apart,
# then --pause, 1.5 s, without). Prints the CLI calls' latency (spawn to
# exit), how many checks completed and failed, and how long they took to
# read the table back (as the agent's status reports it:
# `last_drift_check`).
#
#   sudo tests/bench/periodic_check_churn.sh [--seconds=60] [--resync=4] [--pause=1.5]
#                                             [--agent=PATH]
#
# --resync=86400 is the control: no periodic check within the run.
# --pause=0 registers without a pause between bursts: the agent's own
# changes never stop while the table is read back. Builds
# nothing; needs root, nft and the build's bulkhead, bulkhead-agent and
# bench_push; jq. Not part of run-all.sh (it judges no goal).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build="$repo/build"
seconds=60
resync=4
pause=1.5
agent="$build/bulkhead-agent"
for a in "$@"; do
  case "$a" in
    --seconds=*) seconds=${a#--seconds=} ;;
    --resync=*) resync=${a#--resync=} ;;
    --pause=*) pause=${a#--pause=} ;;
    --agent=*) agent=${a#--agent=} ;;
    *)
      echo "usage: $0 [--seconds=N] [--resync=N] [--pause=S] [--agent=PATH]" >&2
      exit 2
      ;;
  esac
done
cli="$build/bulkhead"
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

ns="bhchurn$$"
dir=$(mktemp -d /tmp/bh-churn.XXXXXX)
agentPid=""
cleanup() {
  rm -f "$dir/run"
  if [ -n "$agentPid" ]; then
    kill "$agentPid" 2>/dev/null || true
    wait "$agentPid" 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$build/tests/bench/bench_push" --write-yaml="$dir/policy" >/dev/null
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$agent" --listen "unix://$dir/agent.sock" --state-dir "$dir/state" \
  --resync-seconds "$resync" --syslog unix:///dev/null >"$dir/agent.log" 2>&1 &
agentPid=$!
call() { "$cli" "$@" --agent "unix://$dir/agent.sock"; }
for _ in $(seq 50); do [ -S "$dir/agent.sock" ] && break; sleep 0.1; done
call push "$dir/policy" >/dev/null

# The other program: its own table, one commit every 0.5 s.
ip netns exec "$ns" nft add table inet other
ip netns exec "$ns" nft add set inet other s '{ type ipv4_addr; }'
touch "$dir/run"
(
  i=0
  while [ -e "$dir/run" ]; do
    ip netns exec "$ns" nft add element inet other s "{ 198.51.100.$((i % 250 + 1)) }"
    i=$((i + 1))
    sleep 0.5
  done
) &
# The checks completed: the distinct times status reports, each with its
# outcome ("periodic check: in sync (read back in 290 ms)").
(
  while [ -e "$dir/run" ]; do
    call status --json 2>/dev/null | jq -r 'select((.last_drift_check_time // "") != "") |
      [.last_drift_check_time, .last_drift_check] | @tsv' || true
    sleep 0.25
  done | sort -u >"$dir/checks"
) &

end=$(($(date +%s) + seconds))
k=0
while [ "$(date +%s)" -lt "$end" ]; do
  for _ in $(seq 40); do
    n=$((k % 20))
    if [ $((k / 20 % 2)) -eq 0 ]; then
      args=(workload add "q$n" --app app7 --iface "q$n" --addr "203.0.113.$((n + 1))")
    else
      args=(workload rm "q$n")
    fi
    k=$((k + 1))
    t0=$(date +%s%N)
    call "${args[@]}" >/dev/null 2>&1 || echo "failed: ${args[*]}" >&2
    echo $((($(date +%s%N) - t0) / 1000)) >>"$dir/us"
    sleep 0.02
  done
  sleep "$pause"
done
rm -f "$dir/run"
sleep 1
checks=$(wc -l <"$dir/checks")
failed=$(grep -c 'check failed' "$dir/checks" || true)
# How long each check took to read the table back (agents that say so).
reads=$({ grep -o 'read back in [0-9]* ms' "$dir/checks" || true; } | awk '{print $4}' | sort -n |
  awk '{ v[NR] = $1 } END { if (NR) printf "%d-%d ms, median %d", v[1], v[NR], v[int((NR + 1) / 2)]; else printf "not reported" }')
sort -n "$dir/us" | awk -v pause="$pause" -v checks="$checks" -v failed="$failed" -v reads="$reads" -v resync="$resync" -v secs="$seconds" '
  { v[NR] = $1 }
  END {
    n = NR
    printf "periodic_check_churn: %d s, --resync-seconds %s, pause %s s: %d CLI calls, p50 %.1f ms, p99 %.1f ms, max %.1f ms, over 50 ms: %d; checks completed: %d (failed: %d), read back in %s\n",
      secs, resync, pause, n, v[int(n * 0.5) + 1] / 1000, v[int(n * 0.99) + 1] / 1000, v[n] / 1000,
      over(v, n), checks, failed, reads
  }
  function over(v, n,   i, c) { c = 0; for (i = 1; i <= n; i++) if (v[i] > 50000) c++; return c }'
