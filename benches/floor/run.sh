#!/usr/bin/env bash
# The floor under benches/compare.sh's two rows that hang on wake-ups, bursts and alloc: what
# a server doing the least those datagrams need costs on this machine, beside turnd and coturn
# in the same rounds. Not part of ./scripts/test; run it on its own, as root:
#
#     ./benches/floor/run.sh          # FLOOR_ROUNDS=5 rounds; about three minutes
#
#   bursts  compare.sh's bursts row (`turnd bench --mode bursts -n 50 --burst 10
#           --frame-interval 33 --size 1200 --echo`) against turnd and coturn, and the same
#           traffic (50 flows, 10 x 1,200 bytes per flow every 33 ms, staggered, one GSO send
#           each, echoed by the peer) through benches/floor/bursts.c: no TURN, no ChannelData,
#           one relay socket per client, one receive and one send per burst each way.
#   alloc   compare.sh's alloc row (`--mode alloc --delete`, one client in lockstep; 15,000
#           allocations for a finer CPU figure) against turnd and coturn, and 45,000 lockstep
#           round trips of 120 bytes through benches/floor/lockstep.c, a server that only
#           sends each datagram back: an allocation is three round trips (Allocate, Allocate
#           with credentials, Refresh 0), so its figure is three of those. Twice: waiting in
#           epoll_wait as turnd and coturn do (`floor`), and blocking in recvfrom on its one
#           socket (`floor-blocking`: two system calls an answer, not four).
#
# Servers and pinning as in compare.sh (scripts/bench-lib.sh: the server on CPU
# FLOOR_SERVER_CPU, default 0, the load and the floors' clients and peer on FLOOR_LOAD_CPU,
# default 1); the order of the three reversed every other round; a fresh server per run.
# The C programs are built with `cc -O2` into target/floor. JSON lines (the floors' own and
# `turnd bench --json`, plus "server", "workload" and "round") go to FLOOR_OUT (default
# target/floor.jsonl), then a table of medians and per-round ratios to stdout. Only
# 127.0.0.1 carries traffic; every run is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

rounds=${FLOOR_ROUNDS:-5}
server_cpu=${FLOOR_SERVER_CPU:-0}
load_cpu=${FLOOR_LOAD_CPU:-1}
out=${FLOOR_OUT:-target/floor.jsonl}
bursts_flags="--mode bursts -n 50 --burst 10 --frame-interval 33 --size 1200 --echo"
alloc_flags="--mode alloc -n 15000 --delete --duration 60"

command -v cc >/dev/null || bench_apt_install gcc libc6-dev
bench_build_turnd
bench_need_coturn install
bin=${CARGO_TARGET_DIR:-target}/floor
mkdir -p "$bin" "$(dirname "$out")"
cc -O2 -Wall -o "$bin/bursts" benches/floor/bursts.c
cc -O2 -Wall -o "$bin/lockstep" benches/floor/lockstep.c

work=$(mktemp -d)
floor_pids=()
cleanup() {
  bench_stop_server
  ((${#floor_pids[@]})) && kill "${floor_pids[@]}" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# emit SERVER WORKLOAD ROUND LINE: one JSON line to $out, tagged.
emit() {
  local tag="\"server\":\"$1\",\"workload\":\"$2\",\"round\":$3"
  if [[ $4 == "{"* ]]; then
    echo "{$tag,${4#\{}" | tee -a "$out" >&2
  else
    echo "floor: $1 $2 failed" >&2
    echo "{$tag,\"error\":\"run failed\"}" >>"$out"
  fi
}

# bound PORT: waits (bounded: 5 s) until something holds UDP 127.0.0.1:PORT.
bound() {
  local _
  for _ in $(seq 50); do
    python3 -c 'import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(("127.0.0.1", int(sys.argv[1])))' \
      "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# run_floor WORKLOAD ROUND [MODE]: the C floor for one workload (MODE: lockstep's server
# mode, `server` or `server-blocking`).
run_floor() {
  local name=$1 round=$2 mode=${3:-server} port peer line= sent=
  port=$(bench_free_port)
  if [[ $name == bursts ]]; then
    peer=$(bench_free_port)
    taskset -c "$load_cpu" timeout 30 "$bin/bursts" peer "$peer" &
    floor_pids=($!)
    taskset -c "$server_cpu" timeout 30 "$bin/bursts" server "$port" "$peer" 5 >"$work/floor.out" &
    floor_pids+=($!)
    # 6.3 s of sending: the server's 1 s warm-up, its 5 s window, and a little more.
    bound "$peer" && bound "$port" &&
      sent=$(taskset -c "$load_cpu" timeout 30 "$bin/bursts" client "$port" 50 10 1200 33 6.3) || true
    kill "${floor_pids[@]}" 2>/dev/null || true
    wait "${floor_pids[@]}" 2>/dev/null || true
    floor_pids=()
    line=$(head -n 1 "$work/floor.out")
    [[ $line == "{"* && $sent == "{"* ]] && line="${line%\}},\"client\":$sent}"
  else
    taskset -c "$server_cpu" timeout 60 "$bin/lockstep" "$mode" "$port" >"$work/floor.out" &
    floor_pids=($!)
    bound "$port" && taskset -c "$load_cpu" timeout 60 "$bin/lockstep" client "$port" 46000 120 || true
    wait "${floor_pids[@]}" 2>/dev/null || true
    floor_pids=()
    line=$(head -n 1 "$work/floor.out")
  fi
  local server=floor
  [[ $mode == server-blocking ]] && server=floor-blocking
  emit "$server" "$name" "$round" "$line"
}

# run_server SERVER WORKLOAD FLAGS ROUND: one fresh turnd or coturn, one `turnd bench` run.
run_server() {
  local server=$1 name=$2 flags=$3 round=$4 port line=
  port=$(bench_free_port)
  if bench_start_server "$server" "$server_cpu" "$port" "$work"; then
    # shellcheck disable=SC2086 # flags is a list of flags
    line=$(taskset -c "$load_cpu" timeout 120 "$TURND_BIN" bench "127.0.0.1:$port" \
      --secret "$BENCH_SECRET" --duration 5 --warmup 1 --server-pid "$bench_server_pid" \
      --json $flags 2>"$work/bench.err") || true
  fi
  bench_stop_server
  emit "$server" "$name" "$round" "$line"
}

: >"$out"
for round in $(seq "$rounds"); do
  order=(floor turnd coturn)
  ((round % 2)) || order=(coturn turnd floor)
  for name in bursts alloc; do
    for server in "${order[@]}"; do
      echo "== round $round/$rounds $name $server" >&2
      if [[ $server == floor && $name == alloc ]]; then
        run_floor alloc "$round"
        run_floor alloc "$round" server-blocking
      elif [[ $server == floor ]]; then
        run_floor "$name" "$round"
      elif [[ $name == bursts ]]; then
        run_server "$server" bursts "$bursts_flags" "$round"
      else
        run_server "$server" alloc "$alloc_flags" "$round"
      fi
    done
  done
done

python3 - "$out" <<'EOF'
import json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1])]
# Per round and workload: each server's figure, per server CPU-second (relayed datagrams for
# bursts, allocations for alloc: the floor's three round trips make one).
fig = {}
for r in runs:
    if "error" in r:
        continue
    if r["workload"] == "bursts":
        v = r.get("relayed_per_cpu_s")
    elif r["server"].startswith("floor"):
        v = 1e6 / (3 * r["cpu_us_per_round_trip"])
    else:
        v = r.get("allocs_per_cpu_s")
    if v:
        fig.setdefault((r["workload"], r["round"]), {})[r["server"]] = float(v)

def ratios(w, a, b):
    return sorted(s[a] / s[b] for (wl, _), s in fig.items() if wl == w and a in s and b in s)

def show(xs):
    return " ".join(f"{x:.2f}" for x in xs) if xs else "–"

def median(xs):
    return f"{statistics.median(xs):.2f}" if xs else "–"

print("| workload (per server CPU-second) | floor | turnd | coturn | turnd/coturn per round | median "
      "| floor/coturn per round | median | turnd/floor median |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
rows = (("bursts", "floor", "relayed datagrams"), ("alloc", "floor", "allocations"),
        ("alloc", "floor-blocking", "allocations; the floor blocking"))
for w, floor, unit in rows:
    med = {}
    for s in (floor, "turnd", "coturn"):
        xs = [v[s] for (wl, _), v in fig.items() if wl == w and s in v]
        med[s] = f"{statistics.median(xs):,.0f}" if xs else "–"
    tc, fc, tf = ratios(w, "turnd", "coturn"), ratios(w, floor, "coturn"), ratios(w, "turnd", floor)
    print(f"| {w} ({unit}) | {med[floor]} | {med['turnd']} | {med['coturn']} | {show(tc)} | {median(tc)} "
          f"| {show(fc)} | {median(fc)} | {median(tf)} |")
failed = [r for r in runs if "error" in r]
lossy = [f"{r['server']} round {r['round']} {100 * r['loss']:.2f} %" for r in runs if r.get("loss")]
fails = [f"{r['server']} round {r['round']}: {r['alloc_failures']}" for r in runs if r.get("alloc_failures")]
floor_sent = sum(r["client"]["sent"] for r in runs if "client" in r)
floor_lost = sum(r["client"]["sent"] - r["client"]["echoed"] for r in runs if "client" in r)
print(f"\nruns that failed: {len(failed)}; bursts runs with loss: {', '.join(lossy) or 'none'}; "
      f"failed allocations: {', '.join(fails) or 'none'}; "
      f"the floor's bursts: {floor_lost} of {floor_sent} datagrams not echoed")
EOF
