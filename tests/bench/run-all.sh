#!/usr/bin/env bash
# Runs every benchmark and makes one report of them: each bench's printed
# output (BENCH.txt), all their figures with the machine they were measured
# on (results.json), and plots (SVG, gnuplot) in docs/benchmarks/.
#
#   sudo tests/bench/run-all.sh [--quick] [--build=DIR] [--out=DIR] [--only=bench_a,bench_b]
#   tests/bench/run-all.sh --plot-only [--out=DIR]    # plots again from results.json
#
# Builds nothing: build first (cmake --build build -j2). Needs root (the
# benches make network namespaces), jq and gnuplot (packaging/install-deps.sh).
# --quick runs every bench at small sizes, for a smoke test of the whole
# chain; its figures say little. A bench that fails is reported, the others
# still run, and the exit status is 1.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build="$repo/build"
out="$repo/docs/benchmarks"
quick=0
plotOnly=0
only=""
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --build=*) build=${a#--build=} ;;
    --out=*) out=${a#--out=} ;;
    --only=*) only=${a#--only=} ;;
    --plot-only) plotOnly=1 ;;
    -h | --help)
      sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "run-all: unknown argument $a (--quick --build=DIR --out=DIR --only=LIST --plot-only)" >&2
      exit 2
      ;;
  esac
done

die() {
  echo "run-all: $*" >&2
  exit 1
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; } # the 1, 5 and 15 minute load averages
for tool in jq gnuplot; do
  command -v "$tool" >/dev/null || die "$tool not found (packaging/install-deps.sh)"
done
tmp=$(mktemp -d /tmp/bh-run-all.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=()

run_benches() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces): sudo $0"
  for tool in nft ip; do
    command -v "$tool" >/dev/null || die "$tool not found (packaging/install-deps.sh)"
  done

  # Each bench with the arguments of a full and of a quick run, in the order
  # they run: the CPU-only ones first, the long agent runs last.
  benches=(bench_scan bench_suggest bench_apply bench_datapath bench_push bench_flows bench_hooks bench_register bench_agent bench_controller bench_controller_etcd)
  declare -A fullArgs=(
    [bench_scan]=""
    [bench_suggest]=""
    [bench_apply]="--sizes=1000,3000,10000 --inc-sizes=1000,3000,10000"
    [bench_datapath]="--rounds=5"
    [bench_push]=""
    [bench_flows]=""
    [bench_hooks]=""
    [bench_register]=""
    [bench_agent]=""
    [bench_controller]=""
    [bench_controller_etcd]="--etcd"
  )
  declare -A quickArgs=(
    [bench_scan]="--packets=20000 --rounds=2 --agent-rounds=2 --agent-slice=5000"
    [bench_suggest]="--events=20000 --rounds=1"
    [bench_apply]="--sizes=100,300 --inc-sizes=100,300 --runs=2 --adds=5 --nft-adds=3 --no-verify"
    [bench_datapath]="--rounds=1 --seconds=1"
    [bench_push]="--workloads=200 --runs=1"
    [bench_flows]="--flood=5000 --rounds=1 --rate=500 --seconds=1"
    [bench_hooks]="--workloads=50 --runs=10"
    [bench_register]="--workloads=200 --runs=10"
    [bench_agent]="--workloads=200 --changes=20 --trickle=20 --nft-adds=5 --idle=2"
    [bench_controller]="--agents=20 --runs=1"
    [bench_controller_etcd]="--etcd --agents=20 --runs=1"
  )
  # An entry that runs another bench's binary (in another mode); the others
  # run their own.
  declare -A binaries=([bench_controller_etcd]=bench_controller)
  bin() { echo "$build/tests/bench/${binaries[$1]:-$1}"; }
  if [ -n "$only" ]; then
    IFS=, read -r -a benches <<<"$only"
    for b in "${benches[@]}"; do
      [ -n "${fullArgs[$b]+x}" ] || die "unknown bench $b"
    done
  fi
  for b in "${benches[@]}"; do
    [ -x "$(bin "$b")" ] || die "$(bin "$b") not built (cmake --build build -j2)"
  done

  mkdir -p "$out"
  # Before the first bench: the commit the build is from (the report's own
  # files, rewritten below, would make it read -dirty) and how busy the
  # machine was to begin with.
  commit=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)
  loadStart=$(loadavg)
  for b in "${benches[@]}"; do
    if [ "$quick" -eq 1 ]; then args=${quickArgs[$b]}; else args=${fullArgs[$b]}; fi
    echo "run-all: $b $args" >&2
    start=$(date +%s)
    # shellcheck disable=SC2086 # the arguments are words
    if "$(bin "$b")" $args --json="$tmp/$b.json" >"$out/$b.txt" 2>&1 &&
      jq -e . "$tmp/$b.json" >/dev/null; then
      echo "run-all: $b done in $(($(date +%s) - start)) s" >&2
    else
      echo "run-all: $b FAILED, see $out/$b.txt:" >&2
      tail -n 5 "$out/$b.txt" >&2
      failed+=("$b")
      rm -f "$tmp/$b.json"
    fi
  done

  # The machine the figures come from.
  first() { "$@" 2>&1 | head -n 1 || true; }
  jq -n \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg mode "$mode" \
    --arg kernel "$(uname -r)" \
    --arg cpuModel "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" \
    --argjson cpus "$(nproc)" \
    --arg memory "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" \
    --arg loadStart "$loadStart" \
    --arg load "$(loadavg)" \
    --arg nft "$(first nft --version)" \
    --arg iptables "$(first iptables-legacy-restore --version)" \
    --arg ipset "$(first ipset --version)" \
    --arg ulogd "$(first ulogd --version)" \
    --arg build "$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)" \
    --arg commit "$commit" \
    '{date: $date, mode: $mode, kernel: $kernel, cpu: $cpuModel, cpus: $cpus, memory: $memory,
      load_average_at_start: $loadStart, load_average_at_end: $load, nft: $nft,
      iptables: $iptables, ipset: $ipset, ulogd: $ulogd, build_type: $build,
      commit: $commit}' >"$tmp/machine.json"
  shopt -s nullglob
  results=("$tmp"/bench_*.json)
  [ ${#results[@]} -gt 0 ] || results=(/dev/null) # jq would read stdin
  jq -n --slurpfile machine "$tmp/machine.json" \
    --argjson failed "$(printf '%s\n' "${failed[@]}" | jq -R . | jq -s 'map(select(. != ""))')" \
    '{machine: $machine[0], failed: $failed, benches: [inputs]}' \
    "${results[@]}" >"$out/results.json"
}

mode=full
[ "$quick" -eq 1 ] && mode=quick
if [ "$plotOnly" -eq 1 ]; then
  [ -s "$out/results.json" ] || die "no $out/results.json to plot"
  mode=$(jq -r .machine.mode "$out/results.json")
else
  run_benches
fi

# --- plots ---------------------------------------------------------------------
# Data files: "size value" lines of one bench's figures with that name and config.
series() { # bench name config -> file
  local f="$tmp/$1-${2// /_}-${3// /_}.dat"
  jq -r --arg b "$1" --arg n "$2" --arg c "$3" \
    '.benches[] | select(.bench == $b) | .figures[] | select(.name == $n and .config == $c)
     | "\(.size) \(.value)"' "$out/results.json" | sort -n >"$f"
  echo "$f"
}
header() { # title, ylabel
  cat <<EOF
set terminal svg size 720,440 dynamic enhanced font "sans,12" background "white"
set title "$1"
set ylabel "$2"
set grid
set key top left
EOF
}
plot() { # name: runs the gnuplot script $tmp/NAME.gp
  if gnuplot "$tmp/$1.gp" >"$out/$1.svg" 2>"$tmp/$1.err"; then
    echo "run-all: plot $out/$1.svg" >&2
  else
    echo "run-all: plot $1 failed: $(cat "$tmp/$1.err")" >&2
    rm -f "$out/$1.svg"
    failed+=("plot $1")
  fi
}
has() { [ -s "$1" ]; }

apply_b=$(series bench_apply "full apply" "bulkhead")
apply_n=$(series bench_apply "full apply" "nft -f")
apply_i=$(series bench_apply "full apply" "iptables-restore + ipset")
apply_k=$(series bench_apply "full apply kernel commit" "bulkhead")
if has "$apply_b"; then
  {
    header "Full apply of the whole table ($mode run)" "seconds (median)"
    echo 'set xlabel "workloads (10 per app; about 12 set elements each)"'
    echo 'set logscale xy'
    echo "plot '$apply_b' w lp lw 2 pt 7 t 'bulkhead (Writer::replace)', \\"
    echo "     '$apply_k' w lp dt 2 pt 6 t 'of which kernel commit', \\"
    echo "     '$apply_n' w lp lw 2 pt 5 t 'nft -f', \\"
    echo "     '$apply_i' w lp lw 2 pt 9 t 'iptables-restore + ipset (IPv4 only)'"
  } >"$tmp/apply.gp"
  plot apply
fi

change_b=$(series bench_apply "one-workload change" "bulkhead")
change_n=$(series bench_apply "one-workload change" "nft add element")
change_d=$(series bench_apply "one-workload change" "nft -f delta")
change_i=$(series bench_apply "one-workload change" "iptables-restore + ipset")
if has "$change_b"; then
  {
    header "One workload more in a loaded table ($mode run)" "seconds (median, spawns included)"
    echo 'set xlabel "workloads in the table"'
    echo 'set logscale xy'
    echo "plot '$change_b' w lp lw 2 pt 7 t 'bulkhead (delta compile + one transaction)', \\"
    echo "     '$change_n' w lp lw 2 pt 5 t 'nft add element (1 entry)', \\"
    echo "     '$change_d' w lp lw 2 pt 4 t 'nft -f of the same delta', \\"
    echo "     '$change_i' w lp lw 2 pt 9 t 'iptables-restore --noflush + ipset'"
  } >"$tmp/change.gp"
  plot change
fi

# Datapath: one figure per configuration; bulkhead's by table size, the
# baselines as horizontal lines.
dp="$tmp/datapath.dat"
jq -r '.benches[] | select(.bench == "bench_datapath") | .figures[]
       | select(.name == "new connections/s")
       | "\(.config | capture("(?<n>[0-9,]+) workloads$") // {n: ""} | .n | gsub(",";""))|\(.config)|\(.value)"' \
  "$out/results.json" >"$dp"
if [ -s "$dp" ]; then
  awk -F'|' '$1 != "" && $2 ~ /^bulkhead/ { print $1, $3 }' "$dp" | sort -n >"$tmp/dp-b.dat"
  awk -F'|' '$1 != "" && $2 ~ /^iptables/ { print $1, $3 }' "$dp" | sort -n >"$tmp/dp-i.dat"
  none=$(awk -F'|' '$2 == "no table" { print $3 }' "$dp")
  ct=$(awk -F'|' '$2 == "conntrack only" { print $3 }' "$dp")
  {
    header "New TCP connections through the forward hook ($mode run)" "connections/s (median)"
    echo 'set xlabel "workloads in the table"'
    echo 'set logscale x'
    echo 'set xrange [50:20000]'
    echo 'set yrange [0:*]'
    echo 'set key bottom left'
    p="plot '$tmp/dp-b.dat' w lp lw 2 pt 7 t 'bulkhead'"
    [ -s "$tmp/dp-i.dat" ] && p+=", '$tmp/dp-i.dat' w p pt 9 ps 1.5 t 'iptables + ipset'"
    [ -n "$none" ] && p+=", $none w l dt 2 lw 2 t 'no table'"
    [ -n "$ct" ] && p+=", $ct w l dt 3 lw 2 t 'conntrack only'"
    echo "$p"
  } >"$tmp/datapath.gp"
  plot datapath
fi

fl="$tmp/flows.dat"
jq -r '.benches[] | select(.bench == "bench_flows") | .figures[]
       | select(.name == "flood events/s, best round") | "\"\(.config)\" \(.value)"' \
  "$out/results.json" >"$fl"
if [ -s "$fl" ]; then
  {
    header "Denied-flow feed: events/s from NFLOG to a UDP syslog receiver ($mode run)" \
      "events/s (best round)"
    echo 'set style fill solid 0.6 border -1'
    echo 'set boxwidth 0.5'
    echo 'set yrange [0:*]'
    echo 'set offsets 0, 0, graph 0.12, 0'
    echo 'set xrange [-0.6:1.6]'
    echo 'unset key'
    echo "plot '$fl' using 0:2:xtic(1) with boxes lc rgb '#4878a8', \\"
    echo "     '' using 0:2:(sprintf('%.0f', \$2)) with labels offset 0,1"
  } >"$tmp/flows.gp"
  plot flows
fi

echo "run-all: $out/results.json ($mode run)" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "run-all: FAILED: ${failed[*]}" >&2
  exit 1
fi
