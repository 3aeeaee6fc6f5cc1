#!/usr/bin/env bash
# pipeworkd demo: the daemon attaches two containers to a fresh bridge from their pipework_cmd
# environment variable, and the containers ping each other across it.
#
#   - prepares the host (scripts/setup-host.sh: packages, dockerd, the pipeworkd-test/busybox image),
#   - starts `python3 -m pipeworkd --run-mode both` in the background, limited to containers with
#     this run's label pipeworkd.demo=<suffix>, and waits until its log says "ready",
#   - starts pwdemo<suffix>-web-1 and pwdemo<suffix>-web-2 with
#       pipework_cmd=<bridge> -i eth1 @CONTAINER_NAME@ 192.168.<N>.1@INSTANCE@/24
#     so they get 192.168.<N>.11/24 and 192.168.<N>.12/24 on eth1,
#   - shows their eth1, the bridge ports, and pings web-2 from web-1 (the demo's exit status),
#   - always cleans up: daemon, both containers, and the bridge with its firewall rule.
#
# usage: scripts/demo.sh     (as root; Debian 12)
# shellcheck disable=SC2317  # shellcheck 0.9 thinks functions only called from the EXIT trap are unreachable
set -euo pipefail

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

readonly PY=/usr/bin/python3
readonly IMAGE=pipeworkd-test/busybox
CONTAINERS=()
readonly READY_TIMEOUT_S=30
readonly ATTACH_TIMEOUT_S=20
readonly STOP_TIMEOUT_S=10

say() { printf 'demo: %s\n' "$*" >&2; }
warn() { printf 'demo: WARNING: %s\n' "$*" >&2; }
heading() { printf '\n===== %s =====\n' "$*"; }

now_us() { local t=${EPOCHREALTIME//[!0-9]/}; printf '%s\n' "$((10#$t))"; }

# True if the process PID exists and is not a zombie (a dead child stays a zombie until reaped).
proc_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

# State that cleanup() looks at; each item is set only once this script has created the thing.
workdir=""
daemon_pid=""
daemon_log=""
bridge=""
containers_touched=0
log_shown=0

show_daemon_log() {
    if [[ -n $daemon_log && -f $daemon_log ]]; then
        heading "pipeworkd log (last 25 lines of $daemon_log)"
        tail -n 25 "$daemon_log" || true
    fi
}

stop_daemon() {
    [[ -n $daemon_pid ]] || return 0
    if proc_alive "$daemon_pid"; then
        say "stopping pipeworkd (pid $daemon_pid): SIGTERM"
        kill -TERM "$daemon_pid" 2>/dev/null || true
        local deadline=$(($(now_us) + STOP_TIMEOUT_S * 1000000))
        while proc_alive "$daemon_pid" && (($(now_us) < deadline)); do sleep 0.1; done
        if proc_alive "$daemon_pid"; then
            warn "pipeworkd did not exit within ${STOP_TIMEOUT_S} s of SIGTERM; sending SIGKILL"
            kill -KILL "$daemon_pid" 2>/dev/null || true
        fi
    fi
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
}

remove_containers() {
    local c
    for c in "${CONTAINERS[@]}"; do
        if "$DOCKER" container inspect "$c" >/dev/null 2>&1; then
            "$DOCKER" rm -f "$c" >/dev/null || warn "docker rm -f $c failed"
        fi
    done
}

delete_bridge() {
    [[ -n $bridge ]] || return 0
    local rules
    rules=$(iptables -w 5 -S DOCKER-USER 2>/dev/null || true)
    if ! link_exists "$bridge" && [[ $rules != *" $bridge "* ]]; then
        say "bridge $bridge was never created; nothing to delete"
        return 0
    fi
    say "deleting bridge $bridge and its firewall rule (pipeworkd.ctl bridge-delete)"
    if "${pw_env[@]}" "$PY" -m pipeworkd.ctl bridge-delete "$bridge"; then
        if link_exists "$bridge"; then
            warn "bridge-delete succeeded but $bridge still exists; deleting it with ip link del"
            ip link del "$bridge" || warn "ip link del $bridge failed"
        fi
    else
        if link_exists "$bridge"; then
            warn "pipeworkd.ctl bridge-delete $bridge failed; falling back to ip link del $bridge"
            ip link del "$bridge" || warn "ip link del $bridge failed"
        else
            warn "pipeworkd.ctl bridge-delete $bridge failed (the bridge does not exist)"
        fi
        # The bridge name is unique to this run, so DOCKER-USER accept rules for it are ours. Match
        # them by their -i/-o/-j options whatever else they carry (pipeworkd adds a comment).
        "$PY" - "$bridge" <<'EOF' || warn "could not check DOCKER-USER for rules of $bridge"
import shlex, subprocess, sys
br = sys.argv[1]
out = subprocess.run(["iptables", "-w", "5", "-S", "DOCKER-USER"],
                     capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    t = shlex.split(line)
    pairs = set(zip(t, t[1:]))
    if t[:2] == ["-A", "DOCKER-USER"] and {("-i", br), ("-o", br), ("-j", "ACCEPT")} <= pairs:
        print(f"demo: WARNING: removing leftover rule: {line}", file=sys.stderr)
        subprocess.run(["iptables", "-w", "5", "-D", "DOCKER-USER", *t[2:]], check=False)
EOF
    fi
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((log_shown == 0)); then show_daemon_log; fi
    heading "cleanup"
    stop_daemon
    if ((containers_touched)); then remove_containers; fi
    delete_bridge
    if [[ -n $workdir ]]; then
        if ((rc == 0)); then
            rm -rf -- "$workdir"
        else
            say "kept the daemon log: $daemon_log"
        fi
    fi
    say "exit status $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

((EUID == 0)) || { say "must run as root"; exit 1; }

heading "host setup"
bash "$root/scripts/setup-host.sh"

if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

# A bridge name that does not exist yet (starts with "br", at most 15 characters), so that cleanup
# only ever deletes a bridge this run made.
base=$(($$ % 10000))
suffix=""
for ((i = 0; i < 100; i++)); do
    s=$(((base + i) % 10000))
    if ! link_exists "brdemo$s"; then
        suffix=$s
        break
    fi
done
[[ -n $suffix ]] || { say "no free brdemoNNNN name near brdemo$base"; exit 1; }
net=$((200 + suffix % 50))
ip1=192.168.$net.11
ip2=192.168.$net.12

label=pipeworkd.demo=$suffix
# Names of this run only (concurrent demos do not meet); @INSTANCE@ is their last digits, 1 and 2.
readonly CONTAINERS=("pwdemo$suffix-web-1" "pwdemo$suffix-web-2")
say "bridge brdemo$suffix, subnet 192.168.$net.0/24, containers ${CONTAINERS[*]} (label $label)"

# pipeworkd's environment: a clean one, so that nothing inherited changes its settings (they come
# from bare or pipework_-prefixed variables such as debug, key or sleep) and no NOTIFY_SOCKET points
# at a service manager (readiness is read from the log instead).
#   PIPEWORKD_LOG_STDERR=1     log to stderr (the log file) even where a journald socket exists,
#   event_filters=label=...    act only on this demo's containers: the daemon leaves alone any other
#                              container on this host that carries a pipework_cmd.
pw_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/root}" LANG=C.UTF-8
    PYTHONPATH="$root" PYTHONDONTWRITEBYTECODE=1 PIPEWORKD_LOG_STDERR=1)
if [[ -n ${DOCKER_HOST:-} ]]; then pw_env+=(DOCKER_HOST="$DOCKER_HOST"); fi

# Leftovers of an earlier demo (these exact names only).
containers_touched=1
remove_containers

workdir=$(mktemp -d /tmp/pwdemo.XXXXXX)
daemon_log=$workdir/pipeworkd.log

heading "starting pipeworkd --run-mode both"
"${pw_env[@]}" event_filters="label=$label" "$PY" -m pipeworkd --run-mode both \
    >>"$daemon_log" 2>&1 </dev/null &
daemon_pid=$!
bridge=brdemo$suffix # from now on cleanup deletes it (pipeworkd creates it on the first attach)

deadline=$(($(now_us) + READY_TIMEOUT_S * 1000000))
until grep -qiw ready "$daemon_log"; do
    if ! proc_alive "$daemon_pid"; then
        say "pipeworkd exited before it was ready"
        exit 1
    fi
    if (($(now_us) >= deadline)); then
        say "pipeworkd did not log \"ready\" within ${READY_TIMEOUT_S} s"
        exit 1
    fi
    sleep 0.2
done
say "pipeworkd is ready (pid $daemon_pid, log $daemon_log)"

heading "starting containers"
for c in "${CONTAINERS[@]}"; do
    # pipeworkd expands @CONTAINER_NAME@ and @INSTANCE@ (1 and 2, from the -1/-2 name suffix).
    printf -v cmd '%s -i eth1 @CONTAINER_NAME@ 192.168.%s.1@INSTANCE@/24' "$bridge" "$net"
    printf '%s: pipework_cmd=%s\n' "$c" "$cmd"
    "$DOCKER" run -d --name "$c" --label "$label" -e "pipework_cmd=$cmd" "$IMAGE" sleep 600 >/dev/null
done

# Wait (one shared deadline) until each container's eth1 carries its address.
deadline=$(($(now_us) + ATTACH_TIMEOUT_S * 1000000))
for pair in "${CONTAINERS[0]} $ip1" "${CONTAINERS[1]} $ip2"; do
    c=${pair% *}
    addr=${pair#* }
    while :; do
        out=$("$DOCKER" exec "$c" ip -4 addr show eth1 2>/dev/null || true)
        [[ $out == *"inet $addr/24"* ]] && break
        if (($(now_us) >= deadline)); then
            say "$c: eth1 did not get $addr/24 within ${ATTACH_TIMEOUT_S} s; it shows:"
            "$DOCKER" exec "$c" ip addr >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    say "$c: eth1 has $addr/24"
done

for c in "${CONTAINERS[@]}"; do
    heading "docker exec $c ip addr show eth1"
    "$DOCKER" exec "$c" ip addr show eth1
done

heading "ip -br link show dev $bridge; ip -br link show master $bridge"
ip -br link show dev "$bridge"
ip -br link show master "$bridge"

heading "docker exec ${CONTAINERS[0]} ping -c 3 -W 2 $ip2"
if "$DOCKER" exec "${CONTAINERS[0]}" ping -c 3 -W 2 "$ip2"; then ping_rc=0; else ping_rc=$?; fi
if ((ping_rc == 0)); then say "ping OK"; else say "ping FAILED (exit $ping_rc)"; fi

show_daemon_log
log_shown=1

exit "$ping_rc"
