# shellcheck shell=bash
# Server setup shared by scripts/bench and benches/compare.sh (sourced, not run): turnd and
# coturn's turnserver on a 127.0.0.1 port with equivalent configurations (one relay thread's
# worth of CPU: turnd `workers = 1`, coturn pinned to one CPU; REST credentials with the secret
# $BENCH_SECRET; loopback peers allowed; no per-source rate limits; UDP only), each pinned to
# one CPU with taskset. The caller sets `set -euo pipefail`, cds to the repository and traps
# EXIT to call bench_stop_server.

BENCH_SECRET=s3cret
bench_server_pid=

# Sets TURND_BIN: the caller's, or a release build of this repository.
bench_build_turnd() {
  if [[ -z ${TURND_BIN:-} ]]; then
    cargo build --release --quiet
    TURND_BIN=${CARGO_TARGET_DIR:-target}/release/turnd
  fi
}

# Installs Debian packages (root or sudo).
bench_apt_install() {
  local sudo=
  [[ $(id -u) == 0 ]] || sudo=sudo
  echo "bench: installing from Debian: $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Fails unless coturn's turnserver is installed; with `install`, installs Debian's coturn
# first when it is missing.
bench_need_coturn() {
  command -v turnserver >/dev/null && return 0
  [[ ${1:-} == install ]] && bench_apt_install coturn
  command -v turnserver >/dev/null || { echo "bench: coturn's turnserver is not installed" >&2; return 1; }
}

# coturn-sid: the newest coturn Debian packages (unstable, "sid": 4.18.0 in December 2026, with
# 4.17's recvmmsg on the listener), installed in a minimal root of its own so the host keeps its
# libraries; made once with debootstrap (installed first if missing; root only), then reused.
COTURN_SID_ROOT=${COTURN_SID_ROOT:-/var/tmp/turnd-bench/sid}

# Fails unless $COTURN_SID_ROOT has coturn and this is root (chroot takes root); with
# `install`, makes it first when it is missing.
bench_need_coturn_sid() {
  [[ $(id -u) == 0 ]] || { echo "bench: coturn-sid runs with chroot, which takes root" >&2; return 1; }
  [[ -x $COTURN_SID_ROOT/usr/bin/turnserver ]] && return 0
  if [[ ${1:-} == install ]]; then
    [[ ! -e $COTURN_SID_ROOT ]] || { echo "bench: $COTURN_SID_ROOT is there without coturn; remove it, or set COTURN_SID_ROOT" >&2; return 1; }
    command -v debootstrap >/dev/null || bench_apt_install debootstrap
    echo "bench: installing Debian unstable's coturn in $COTURN_SID_ROOT" >&2
    local log
    log=$(dirname "$COTURN_SID_ROOT")/debootstrap.log
    rm -rf "$COTURN_SID_ROOT.partial"
    mkdir -p "$(dirname "$COTURN_SID_ROOT")"
    if ! debootstrap --variant=minbase --include=coturn sid "$COTURN_SID_ROOT.partial" \
      http://deb.debian.org/debian >"$log" 2>&1; then
      rm -rf "$COTURN_SID_ROOT.partial"
      echo "bench: debootstrap failed; see $log" >&2
      return 1
    fi
    # As scripts/test-nspawn does with its root: apt's downloaded packages are not read again.
    rm -rf "$COTURN_SID_ROOT.partial"/var/cache/apt/archives/*.deb
    mv "$COTURN_SID_ROOT.partial" "$COTURN_SID_ROOT"
  fi
  [[ -x $COTURN_SID_ROOT/usr/bin/turnserver ]] || { echo "bench: no coturn in $COTURN_SID_ROOT" >&2; return 1; }
}

# Prints a UDP port free on 127.0.0.1 now.
bench_free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_start_server SERVER CPU PORT DIR [PEER_PORT]: starts turnd or coturn on 127.0.0.1:PORT
# pinned to CPU (config and log in DIR), sets bench_server_pid, and waits until a `turnd probe`
# round trip through the relay works (bounded: 10 s). Returns 1 if it never does. SERVER
# `turnd-nc` is turnd with receive coalescing off (`server.receive-coalesce-us = 0`);
# `coturn-sid` is the coturn in $COTURN_SID_ROOT (bench_need_coturn_sid), run with chroot;
# `forwarder` is `turnd bench-forwarder` to 127.0.0.1:PEER_PORT (no TURN: it is ready once it
# says where it listens; load it with `turnd bench --bare --peer-port PEER_PORT`).
bench_start_server() {
  local server=$1 cpu=$2 port=$3 dir=$4 extra= _
  if [[ $server == forwarder ]]; then
    : >"$dir/forwarder.out"
    taskset -c "$cpu" "$TURND_BIN" bench-forwarder --listen "127.0.0.1:$port" --to "127.0.0.1:$5" \
      --exit-after 600 >"$dir/forwarder.out" 2>&1 &
    bench_server_pid=$!
    for _ in $(seq 100); do
      grep -q "^turnd bench-forwarder: 127.0.0.1:$port" "$dir/forwarder.out" && return 0
      kill -0 "$bench_server_pid" 2>/dev/null || return 1
      sleep 0.1
    done
    return 1
  fi
  if [[ $server == turnd-nc ]]; then
    server=turnd extra="receive-coalesce-us = 0"
  fi
  if [[ $server == turnd ]]; then
    cat >"$dir/turnd.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
relay-ip = "127.0.0.1"
workers = 1
tcp = false
$extra
[auth]
realm = "turnd.test"
secrets = ["$BENCH_SECRET"]
[peers]
allowed = ["127.0.0.1/32"]
[limits]
allocate-rate = 0
challenge-rate = 0
EOF
    taskset -c "$cpu" "$TURND_BIN" --config "$dir/turnd.toml" >/dev/null 2>"$dir/turnd.log" &
  else
    # The same options for both coturns, less the two that 4.17 made defaults and now refuses
    # (`--no-cli`: no CLI unless `--cli`; `--no-dtls`: no DTLS unless `--dtls`).
    # BENCH_COTURN_FLAGS adds options (for example coturn-sid's `--multiplex-peer --udp-gso`).
    local run=(turnserver --no-cli --no-dtls)
    [[ $server == coturn-sid ]] && run=(chroot "$COTURN_SID_ROOT" turnserver)
    # shellcheck disable=SC2086 # BENCH_COTURN_FLAGS is a list of options
    taskset -c "$cpu" "${run[@]}" -n --no-tls --no-tcp --listening-ip 127.0.0.1 \
      --listening-port "$port" --relay-ip 127.0.0.1 --min-port 49152 --max-port 65535 --realm turnd.test \
      --use-auth-secret --static-auth-secret "$BENCH_SECRET" --allow-loopback-peers --no-stdout-log \
      --log-file /dev/null ${BENCH_COTURN_FLAGS:-} >/dev/null 2>&1 &
  fi
  bench_server_pid=$!
  for _ in $(seq 50); do
    "$TURND_BIN" probe --server "127.0.0.1:$port" --secret "$BENCH_SECRET" >/dev/null 2>&1 && return 0
    kill -0 "$bench_server_pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# Stops the server bench_start_server started, if any.
bench_stop_server() {
  if [[ -n $bench_server_pid ]]; then
    kill "$bench_server_pid" 2>/dev/null || true
    wait "$bench_server_pid" 2>/dev/null || true
    bench_server_pid=
  fi
}
