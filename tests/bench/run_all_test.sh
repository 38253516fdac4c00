#!/usr/bin/env bash
# CTest bench.run_all_quick: tests/bench/run-all.sh --quick, on the three
# benches that take seconds (scan, suggest, apply), and then on
# bench_controller_etcd (another binary's mode), into a scratch directory;
# checks that what it produces is there and well formed: results.json (the
# machine, every bench's figures and goals), each bench's text, the apply
# plots as SVG. Timings are not judged. Needs root (bench_apply makes
# namespaces): without it run-all.sh fails, and so does this test.
#
#   tests/bench/run_all_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
out=$(mktemp -d /tmp/bh-run-all-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# A bench it does not know is refused before anything runs.
if bash "$src/tests/bench/run-all.sh" --quick --only=bench_nonesuch --build="$build" \
  --out="$out" 2>/dev/null; then
  fail "run-all.sh accepted an unknown bench"
fi

benches=bench_scan,bench_suggest,bench_apply
bash "$src/tests/bench/run-all.sh" --quick --only=$benches --build="$build" --out="$out" ||
  fail "run-all.sh --quick exited $?"

r="$out/results.json"
[ -s "$r" ] || fail "no results.json"
jq -e . "$r" >/dev/null || fail "results.json is not JSON"
jq -e '.machine.kernel != "" and .machine.cpus > 0 and (.machine.nft | test("nftables"))
       and .machine.mode == "quick" and .machine.load_average_at_start != ""' "$r" >/dev/null || fail "machine: $(jq -c .machine "$r")"
jq -e '.failed == []' "$r" >/dev/null || fail "failed benches: $(jq -c .failed "$r")"
for b in ${benches//,/ }; do
  jq -e --arg b "$b" '[.benches[] | select(.bench == $b)] | length == 1' "$r" >/dev/null ||
    fail "$b: not exactly once in results.json"
  jq -e --arg b "$b" '.benches[] | select(.bench == $b)
      | (.figures | length > 0)
        and all(.figures[]; (.name | type == "string") and (.config | type == "string")
                            and (.size | type == "number") and (.unit | type == "string")
                            and (.value == null or (.value | type == "number")))
        and (.goals | length > 0)
        and all(.goals[]; .status == "PASS" or .status == "MISS")
        and all(.args[]; startswith("--json") | not)' "$r" >/dev/null ||
    fail "$b: malformed entry $(jq -c --arg b "$b" '.benches[] | select(.bench == $b)' "$r")"
  [ -s "$out/$b.txt" ] || fail "$b.txt is empty"
  grep -q "^$b " "$out/$b.txt" || fail "$b.txt lacks the bench's banner"
done

# bench_apply measured all three sides at both quick sizes, with positive times.
for config in "bulkhead" "nft -f" "iptables-restore + ipset"; do
  for size in 100 300; do
    for name in "full apply" "one-workload change"; do
      [ "$name" = "one-workload change" ] && [ "$config" = "nft -f" ] && continue
      jq -e --arg c "$config" --arg n "$name" --argjson s $size \
        '[.benches[] | select(.bench == "bench_apply") | .figures[]
          | select(.name == $n and .config == $c and .size == $s and .value > 0)] | length == 1' \
        "$r" >/dev/null || fail "bench_apply: no figure \"$name\" for $config at $size"
    done
  done
done

for plot in apply change; do
  f="$out/$plot.svg"
  [ -s "$f" ] || fail "no $plot.svg"
  xmllint --noout "$f" || fail "$plot.svg is not well-formed XML"
  grep -q "<svg" "$f" || fail "$plot.svg is not an SVG"
  [ "$(grep -c "<path" "$f")" -gt 3 ] || fail "$plot.svg draws nothing"
done
# An entry that runs another bench's binary in another mode:
# bench_controller_etcd is bench_controller --etcd (its own etcd, two
# controllers), reported under its own name with etcd's figures.
etcdOut="$out/etcd"
bash "$src/tests/bench/run-all.sh" --quick --only=bench_controller_etcd --build="$build" \
  --out="$etcdOut" || fail "run-all.sh --quick --only=bench_controller_etcd exited $?"
r="$etcdOut/results.json"
jq -e '.failed == [] and ([.benches[] | select(.bench == "bench_controller_etcd")] | length == 1)' \
  "$r" >/dev/null || fail "bench_controller_etcd: $(jq -c '{failed, benches: [.benches[].bench]}' "$r")"
for name in "etcd database size" "etcd keys" "failover, agents of A in sync on B" \
  "policy change pushed to A to host p99" "controller RSS B"; do
  jq -e --arg n "$name" '[.benches[] | select(.bench == "bench_controller_etcd") | .figures[]
      | select(.name == $n and .value > 0)] | length == 1' "$r" >/dev/null ||
    fail "bench_controller_etcd: no figure \"$name\""
done
grep -q "^bench_controller_etcd " "$etcdOut/bench_controller_etcd.txt" ||
  fail "bench_controller_etcd.txt lacks the bench's banner"
echo "run-all --quick: results.json, texts and plots well formed"
