#!/usr/bin/env bash
# turnd against coturn, A/B interleaved (issue 9): every workload is one `turnd bench` run
# against a fresh turnd and one against a fresh coturn (Debian's turnserver, installed when
# missing, root or sudo), and against the newest coturn Debian packages (coturn-sid, see
# below), COMPARE_ROUNDS times (default 3), the server that goes first alternating each round;
# then a markdown table with, per workload and figure, the median for each server and the
# turnd/coturn ratio (and turnd/coturn-sid, and turnd/forwarder, the bare forwarder's). Not
# part of ./scripts/test; run it on its own, as root:
#
#     ./benches/compare.sh                                   # about half an hour
#     COMPARE_SECONDS=1 COMPARE_ROUNDS=1 ./benches/compare.sh  # quick mode: does it work
#
# The servers are scripts/bench's (scripts/bench-lib.sh): turnd `workers = 1` and coturn, both
# on a free 127.0.0.1 port pinned to CPU COMPARE_SERVER_CPU (default 0), REST credentials,
# loopback peers allowed, no per-source rate limits; the load is pinned to COMPARE_LOAD_CPU
# (default 1). Builds turnd (`cargo build --release`; TURND_BIN to use a built one).
#
# Workloads, each measured for COMPARE_SECONDS (default 5) after a 1 s warm-up:
#   rate-*   ChannelData at COMPARE_RATE payloads a second over all flows (default 20,000),
#            100 and 1,200 bytes, 10 and 200 allocations, one-way
#   rate50k-*  the same at COMPARE_HIGH_RATE (default 50,000; the name shows the rate, in
#            thousands when whole): the range where the issue quotes coturn's fixed-rate
#            figures, and where a worker that batches wakes up less often per packet
#   flood-*  the same flat out (--rate 0)
#   send-*   Send indications, 100 bytes, 10 allocations, COMPARE_RATE
#   bursts   video-like: 50 flows, 10 x 1,200-byte packets per flow every 33 ms, each burst
#            one GSO send (as a Linux WebRTC sender), echoed the same way
#   latency  echoed round trips, 100 bytes, 10 flows, COMPARE_LATENCY_RATE (default 2,000) pps
#   latency-half  the same at half of turnd's maximum rate, the rate issue 9's latency target
#            names: before the rounds one run of `--mode throughput -n 10 --rate 0 --size 100
#            --echo` against turnd (workload "max-echo", round 0 in the JSON lines) measures the
#            most round trips a second it carries (or the tool offers: the tool may be the
#            limit, which only lowers the rate), and latency-half runs at half of that, in
#            whole thousands. COMPARE_HALF_RATE sets the rate instead (and skips that run); it
#            was a fixed 50,000 before, half of turnd's maximum on the first machine measured
#   alloc    allocation churn: 1,000 x COMPARE_SECONDS Allocates (each with its 401), each
#            deleted at once, by one client in lockstep (each request after the last answer:
#            every request costs the server a wake-up, and the figure is mostly what one costs)
#   alloc-4  the same churn from four clients at once (4,000 x COMPARE_SECONDS), as a server
#            sees many users calling: a wake-up may find several requests
#   hold     2,000 allocations held and refreshed for 2 x COMPARE_SECONDS: RSS per 1,000
# COMPARE_SERVERS (default "turnd coturn coturn-sid forwarder") lists the servers; `coturn-sid`
# is Debian unstable's coturn (4.18.0 when this was written; 4.17 added recvmmsg on the
# listener), which scripts/bench-lib.sh installs once with debootstrap in a root of its own
# (COTURN_SID_ROOT, default /var/tmp/turnd-bench/sid) and runs with chroot, with the options
# coturn gets; `turnd-nc` is turnd with
# receive coalescing off (`server.receive-coalesce-us = 0`), to show what coalescing costs and
# buys; `forwarder` is `turnd bench-forwarder`, the bare recvmmsg/sendmmsg forwarder (no TURN,
# one way: it runs the rate-, rate50k- and flood- workloads only, driven by `turnd bench --bare`),
# the floor of CPU per relayed packet on this machine, with turnd/forwarder ratios.
# COMPARE_SPIN=1 runs every load with `turnd bench --spin`: the tool polls its sockets instead
# of sleeping, so on loopback the servers' sends wake none of its threads (a client on another
# host costs a server no such wake-up); the header says so. alloc-4's four threads then share
# the load's one CPU.
# benches/floor/run.sh measures, beside turnd and coturn, the floor under the bursts and alloc
# rows: what a server doing nothing but moving their datagrams costs on the machine.
# Every run is one JSON line (`turnd bench --json` plus "server", "workload" and "round"; a run
# that failed has "error" instead of figures) in COMPARE_OUT (default target/compare.jsonl); the
# table goes to stdout and to the same path with .md. A fresh server per run: RSS is per run.
# Server CPU seconds have the kernel's 10 ms tick: short windows give coarse per-CPU-second
# figures. Every run is bounded by `timeout`; only 127.0.0.1 carries traffic; the server is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-lib.sh

seconds=${COMPARE_SECONDS:-5}
rounds=${COMPARE_ROUNDS:-3}
rate=${COMPARE_RATE:-20000}
latency_rate=${COMPARE_LATENCY_RATE:-2000}
half_rate=${COMPARE_HALF_RATE:-}
high_rate=${COMPARE_HIGH_RATE:-50000}
spin=${COMPARE_SPIN:-0}
[[ $spin =~ ^[01]$ ]] || { echo "compare: COMPARE_SPIN takes 0 or 1" >&2; exit 2; }
load_flags=
((spin)) && load_flags=--spin
read -r -a servers <<<"${COMPARE_SERVERS:-turnd coturn coturn-sid forwarder}"
for server in "${servers[@]}"; do
  [[ $server =~ ^(turnd|turnd-nc|coturn|coturn-sid|forwarder)$ ]] || { echo "compare: COMPARE_SERVERS takes turnd, turnd-nc, coturn, coturn-sid and forwarder" >&2; exit 2; }
done
out=${COMPARE_OUT:-target/compare.jsonl}
server_cpu=${COMPARE_SERVER_CPU:-0}
load_cpu=${COMPARE_LOAD_CPU:-1}
for n in "$seconds" "$rounds" "$rate" "$latency_rate" "${half_rate:-1}" "$high_rate"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "compare: COMPARE_SECONDS, _ROUNDS, _RATE, _LATENCY_RATE, _HALF_RATE, _HIGH_RATE take whole numbers" >&2; exit 2; }
done
((seconds > 0 && rounds > 0 && rate > 0 && high_rate > 0 && ${half_rate:-1} > 0)) || { echo "compare: seconds, rounds and rates must be > 0" >&2; exit 2; }
high=rate$high_rate
if ((high_rate % 1000 == 0)); then high=rate$((high_rate / 1000))k; fi

bench_build_turnd
if [[ " ${servers[*]} " == *" coturn "* ]]; then
  bench_need_coturn install
fi
if [[ " ${servers[*]} " == *" coturn-sid "* ]]; then
  if bench_need_coturn_sid install; then
    machine_coturn_sid=$(chroot "$COTURN_SID_ROOT" turnserver --version 2>/dev/null | tail -n 1)
  elif [[ -z ${COMPARE_SERVERS:-} ]]; then
    # Debian unstable can be uninstallable for a while; the default list goes on without it.
    echo "compare: going on without coturn-sid (set COMPARE_SERVERS to choose the servers)" >&2
    read -r -a servers <<<"${servers[*]/coturn-sid/}"
  else
    exit 1
  fi
fi

work=$(mktemp -d)
cleanup() {
  bench_stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Longest run: hold's 2,000 Allocates plus its window, or alloc's upper bound, plus start-up.
limit=$((15 * seconds + 60))

# run_one SERVER WORKLOAD FLAGS ROUND: one fresh server, one bench run, one JSON line to $out.
run_one() {
  local server=$1 name=$2 flags=$3 round=$4 port line status=0 peer_port=
  local tag="\"server\":\"$server\",\"workload\":\"$name\",\"round\":$round"
  if [[ $server == forwarder ]]; then
    # One-way ChannelData only: what a forwarder without TURN can carry.
    [[ $name =~ ^(rate|flood) ]] || return 0
    peer_port=$(bench_free_port)
    flags="$flags --bare --peer-port $peer_port"
  fi
  echo "== round $round/$rounds $name $server: $flags" >&2
  port=$(bench_free_port)
  if ! bench_start_server "$server" "$server_cpu" "$port" "$work" "$peer_port"; then
    bench_stop_server
    echo "compare: $server did not relay the probe within 10 s" >&2
    echo "{$tag,\"error\":\"server did not start\"}" >>"$out"
    return
  fi
  # shellcheck disable=SC2086 # flags is a list of flags
  line=$(taskset -c "$load_cpu" timeout "$limit" "$TURND_BIN" bench "127.0.0.1:$port" \
    --secret "$BENCH_SECRET" --duration "$seconds" --warmup 1 --server-pid "$bench_server_pid" \
    --json $flags $load_flags 2>"$work/bench.err") || status=$?
  bench_stop_server
  if [[ $status == 0 && $line == "{"* ]]; then
    echo "{$tag,${line#\{}" | tee -a "$out" >&2
  else
    echo "compare: that run failed (exit $status): $(tail -n 3 "$work/bench.err")" >&2
    echo "{$tag,\"error\":\"bench exit $status\"}" >>"$out"
  fi
}

mkdir -p "$(dirname "$out")"
: >"$out"

# What the figures depend on besides the servers: the CPU, the kernel, and how an idle CPU
# waits (a guest's halt polling decides what each wake-up costs; see BENCHMARKS.md).
cpu_model=$(sed -n '/^model name/{s/^model name[[:space:]]*: //p;q}' /proc/cpuinfo)
machine="${cpu_model:-$(uname -m)}, $(nproc) CPUs, kernel $(uname -r)"
if [[ -r /sys/devices/system/cpu/cpuidle/current_driver ]]; then
  machine+=", cpuidle $(cat /sys/devices/system/cpu/cpuidle/current_driver)"
fi
if [[ -r /sys/module/haltpoll/parameters/guest_halt_poll_ns ]]; then
  machine+=" (guest_halt_poll_ns $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns))"
fi
if [[ -n ${machine_coturn_sid:-} ]]; then
  machine+="; coturn-sid is coturn $machine_coturn_sid"
fi
if ((spin)); then
  machine+="; the load spins (turnd bench --spin)"
fi
echo "compare: $machine" >&2

# latency-half's rate: half of the round trips a second turnd carries flat out (an echoed
# round trip is two relayed payloads), unless COMPARE_HALF_RATE names one.
if [[ -n $half_rate ]]; then
  half_note="latency-half at $half_rate round trips a second (COMPARE_HALF_RATE)"
else
  run_one turnd max-echo "--mode throughput -n 10 --rate 0 --size 100 --echo" 0
  read -r half_rate half_shown max_shown < <(python3 - "$out" <<'EOF'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
done = [r for r in runs if r.get("workload") == "max-echo" and r.get("relayed_pps")]
if done:
    most = done[-1]["relayed_pps"] / 2
    half = max(1000, int(most / 2) // 1000 * 1000)
    print(half, f"{half:,}", f"{round(most):,}")
EOF
  ) || true
  if [[ -z ${half_rate:-} ]]; then
    echo "compare: turnd's echo flood (max-echo) failed, so there is no maximum to halve; set COMPARE_HALF_RATE to run without it" >&2
    exit 1
  fi
  half_note="latency-half at $half_shown round trips a second: half of the $max_shown turnd carried flat out (max-echo)"
fi
echo "compare: $half_note" >&2

# name|flags (after --duration $seconds --warmup 1: a later --duration wins).
workloads=(
  "rate-100B-n10|--mode throughput -n 10 --rate $rate --size 100"
  "rate-100B-n200|--mode throughput -n 200 --rate $rate --size 100"
  "rate-1200B-n10|--mode throughput -n 10 --rate $rate --size 1200"
  "rate-1200B-n200|--mode throughput -n 200 --rate $rate --size 1200"
  "$high-100B-n10|--mode throughput -n 10 --rate $high_rate --size 100"
  "$high-100B-n200|--mode throughput -n 200 --rate $high_rate --size 100"
  "$high-1200B-n10|--mode throughput -n 10 --rate $high_rate --size 1200"
  "$high-1200B-n200|--mode throughput -n 200 --rate $high_rate --size 1200"
  "flood-100B-n10|--mode throughput -n 10 --rate 0 --size 100"
  "flood-100B-n200|--mode throughput -n 200 --rate 0 --size 100"
  "flood-1200B-n10|--mode throughput -n 10 --rate 0 --size 1200"
  "flood-1200B-n200|--mode throughput -n 200 --rate 0 --size 1200"
  "send-100B-n10|--mode throughput -n 10 --rate $rate --size 100 --send-indications"
  "bursts|--mode bursts -n 50 --burst 10 --frame-interval 33 --size 1200 --echo"
  "latency|--mode latency -n 10 --rate $latency_rate --size 100"
  "latency-half|--mode latency -n 10 --rate $half_rate --size 100"
  "alloc|--mode alloc -n $((1000 * seconds)) --delete --duration $((12 * seconds))"
  "alloc-4|--mode alloc -n $((4000 * seconds)) --threads 4 --delete --duration $((12 * seconds))"
  "hold|--mode hold -n 2000 --duration $((2 * seconds)) --refresh-every $seconds"
)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "compare: ${#workloads[@]} workloads x ${#servers[@]} servers x $rounds rounds, ${seconds} s windows" >&2
for ((round = 1; round <= rounds; round++)); do
  order=("${servers[@]}")
  if ((round % 2 == 0)); then
    order=()
    for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[i]}"); done
  fi
  for workload in "${workloads[@]}"; do
    for server in "${order[@]}"; do
      run_one "$server" "${workload%%|*}" "${workload#*|}" "$round"
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The table: medians per workload, server and figure, and each turnd's ratio to coturn.
python3 - "$out" "${out%.jsonl}.md" "$seconds" "$rounds" "$load_before" "$load_after" \
  "${servers[*]}" "$machine" "$half_note" "${workloads[@]}" <<'EOF'
import json, statistics, sys

out, md, seconds, rounds, load_before, load_after, servers, machine, half_note = sys.argv[1:10]
servers = servers.split()
workloads = [w.split("|", 1) for w in sys.argv[10:]]
# Ratio columns: each other server to coturn, each turnd to the newest coturn and to the bare
# forwarder.
ratios = [(s, "coturn") for s in servers if s != "coturn"] if "coturn" in servers else []
ratios += [(s, b) for b in ("coturn-sid", "forwarder") if b in servers for s in servers if s.startswith("turnd")]
runs = [json.loads(line) for line in open(out) if line.strip()]
figures = [  # key, label, better when, format
    ("relayed_pps", "relayed pps", "higher", "{:,.0f}"),
    ("relayed_per_cpu_s", "relayed per server CPU-s", "higher", "{:,.0f}"),
    ("loss", "loss", "lower", "{:.2%}"),
    ("p99_us", "p99 µs", "lower", "{:,.0f}"),
    ("allocs_per_cpu_s", "allocations per server CPU-s", "higher", "{:,.0f}"),
    ("alloc_failures", "allocation failures", "lower", "{:,.0f}"),
    ("rss_per_1000_allocs_kib", "RSS KiB per 1,000 allocations", "lower", "{:,.0f}"),
]

def values(name, server, key):
    return [r[key] for r in runs if r.get("workload") == name and r.get("server") == server
            and r.get(key) is not None]

lines = [f"{machine}; {half_note}.",
         f"{seconds} s windows, {rounds} interleaved rounds, load average {load_before} before, "
         f"{load_after} after. Medians of the runs that completed (a median of fewer says how many);",
         "p99: a payload's round trip (echo), an Allocate's with its 401 (alloc). A ratio to coturn > 1",
         "is turnd ahead where higher is better, behind where lower is better; coturn-sid is the newest",
         "coturn Debian packages (the version is above); turnd-nc is turnd with",
         "`server.receive-coalesce-us = 0`; forwarder is `turnd bench-forwarder` (no TURN, one way),",
         "the bare recvmmsg/sendmmsg forwarder: a turnd/forwarder ratio of 1 is that floor's CPU per packet.", "",
         "| workload | `turnd bench` flags | figure | " + " | ".join(servers) + " | "
         + "".join(f"{s}/{b} | " for s, b in ratios) + "better |",
         "| --- | --- | --- | " + "--- | " * (len(servers) + len(ratios)) + "--- |"]
for name, flags in workloads:
    failed = {s: sum(1 for r in runs if r.get("workload") == name and r.get("server") == s
                     and "error" in r) for s in servers}
    counts = " + ".join(str(failed[s]) for s in servers)
    cell = f"{name} ({counts} failed)" if any(failed.values()) else name
    first = True
    for key, label, better, fmt in figures:
        got = {s: values(name, s, key) for s in servers}
        if not any(got.values()) or key == "alloc_failures" and not any(sum(got.values(), [])):
            continue
        median = {s: statistics.median(v) if v else None for s, v in got.items()}
        show = lambda s: "–" if median[s] is None else fmt.format(median[s]) + (
            "" if len(got[s]) == int(rounds) else f" ({len(got[s])} runs)")
        ratio = lambda s, b: f"{median[s] / median[b]:.2f}" if median[s] is not None and median[b] else "–"
        lines.append(f"| {cell if first else ''} | {'`' + flags + '`' if first else ''} | {label} | "
                     + "".join(f"{show(s)} | " for s in servers) + "".join(f"{ratio(s, b)} | " for s, b in ratios)
                     + f"{better} |")
        first = False
    if first:
        lines.append(f"| {cell} | `{flags}` | every run failed | " + "– | " * (len(servers) + len(ratios)) + "|")
table = "\n".join(lines) + "\n"
open(md, "w").write(table)
print(table, end="")
EOF
