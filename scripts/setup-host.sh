#!/usr/bin/env bash
# Prepare a Debian 12 (bookworm) host, as root, for pipeworkd's demo and tests:
#   1. install the apt packages that are missing (all of them before dockerd starts: policy-rc.d and
#      needrestart, see MACHINE-NOTES §6),
#   2. start dockerd if nothing answers `docker info` (PID 1 is not systemd, so nothing else starts it),
#   3. build the local test image pipeworkd-test/busybox from busybox-static (no registry needed),
#   4. with --venv DIR: a venv from /usr/bin/python3 holding the newest PyPI releases of the Python deps.
# Every step is skipped when it is already satisfied, so a second run is a fast no-op.
#
# usage: scripts/setup-host.sh [--venv DIR]
set -euo pipefail

readonly IMAGE=pipeworkd-test/busybox
readonly DOCKERD_LOG=/var/log/dockerd.log
readonly DOCKERD_TIMEOUT_S=60
readonly APT_LISTS=/var/lib/apt/lists
readonly CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
readonly APT_PACKAGES=(
    docker.io busybox-static iptables
    python3-pyroute2 python3-docker python3-systemd python3-sdnotify python3-pytest
    python3-venv python3-dev pkg-config libsystemd-dev gcc dnsmasq-base systemd
)
readonly VENV_PACKAGES=(pyroute2 docker sdnotify systemd-python pytest)
readonly VENV_IMPORT_CHECK='import pyroute2, docker, sdnotify, systemd.journal, pytest'

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# Microseconds since the epoch (EPOCHREALTIME's separator follows the locale, so keep only digits).
now_us() { local t=${EPOCHREALTIME//[!0-9]/}; printf '%s\n' "$((10#$t))"; }
fmt_s() { printf '%d.%03d s' "$(($1 / 1000000))" "$((($1 / 1000) % 1000))"; }

usage() {
    cat <<'EOF'
usage: setup-host.sh [--venv DIR]
  Prepare this Debian 12 host (as root) for pipeworkd's demo and tests: apt packages, dockerd, the
  pipeworkd-test/busybox image and, with --venv, a venv at DIR (built from /usr/bin/python3) holding the
  newest PyPI releases of pyroute2, docker, sdnotify, systemd-python and pytest.
EOF
}

venv=""
while (($#)); do
    case $1 in
        --venv)
            if (($# < 2)) || [[ -z $2 ]]; then die "--venv needs a directory"; fi
            venv=$2
            shift 2
            ;;
        --venv=*)
            venv=${1#--venv=}
            [[ -n $venv ]] || die "--venv needs a directory"
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
done

((EUID == 0)) || die "must run as root"

start_us=$(now_us)
tmpdir=""
cleanup() { if [[ -n $tmpdir ]]; then rm -rf -- "$tmpdir"; fi; }
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------
# 1. apt packages
# ---------------------------------------------------------------------------------------------------

# The packages of "$@" that are not installed, one per line.
missing_packages() {
    local -A installed=()
    local name status p
    # dpkg-query exits 1 when a name is unknown but still prints the known ones.
    while read -r name status; do
        # ${db:Status-Abbrev}: 1st char = wanted, 2nd = current state ('i' = installed).
        if [[ ${status:1:1} == i ]]; then installed[$name]=1; fi
    done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true)
    for p in "$@"; do
        [[ -n ${installed[$p]:-} ]] || printf '%s\n' "$p"
    done
}

# The lists are fresh when they exist and `apt-get update` ran less than a day ago. The InRelease
# files keep the server's Last-Modified time, so look at directory mtimes: apt-get update always
# touches lists/partial, and this script touches it too after each update.
apt_lists_fresh() {
    compgen -G "$APT_LISTS/*_Packages*" >/dev/null || return 1
    [[ -n $(find "$APT_LISTS" -maxdepth 1 ! -name lock -mmin -1440 -print -quit 2>/dev/null) ]]
}

apt_update() {
    log "apt-get update"
    timeout 300 apt-get update -q >&2 || die "apt-get update failed"
    mkdir -p "$APT_LISTS/partial" && touch "$APT_LISTS/partial"
}

export DEBIAN_FRONTEND=noninteractive
# needrestart must never try to restart services (e.g. dockerd) behind our back.
export NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l

mapfile -t missing < <(missing_packages "${APT_PACKAGES[@]}")
if ((${#missing[@]} == 0)); then
    log "apt packages: all ${#APT_PACKAGES[@]} installed"
else
    updated=0
    if ! apt_lists_fresh; then
        apt_update
        updated=1
    fi
    log "apt-get install ${missing[*]}"
    apt_install=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}")
    if ! "${apt_install[@]}" >&2; then
        ((updated == 0)) || die "apt-get install failed"
        log "apt-get install failed with the existing lists; updating them and retrying once"
        apt_update
        "${apt_install[@]}" >&2 || die "apt-get install failed"
    fi
    mapfile -t still_missing < <(missing_packages "${APT_PACKAGES[@]}")
    ((${#still_missing[@]} == 0)) || die "still not installed: ${still_missing[*]}"
fi

# ---------------------------------------------------------------------------------------------------
# 2. dockerd
# ---------------------------------------------------------------------------------------------------

# Debian's CLI matches Debian's engine; the first `docker` on PATH may be a different, newer one.
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

docker_up() { "$DOCKER" info >/dev/null 2>&1; }

# True if the process PID exists and is not a zombie.
proc_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# True if the pidfile of a live dockerd exists (e.g. one that is still starting).
dockerd_pidfile_alive() {
    local pid comm
    pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == dockerd ]] && proc_alive "$pid"
}

dockerd_fail() {
    printf 'setup: ERROR: %s; last lines of %s:\n' "$1" "$DOCKERD_LOG" >&2
    tail -n 30 "$DOCKERD_LOG" >&2 || true
    exit 1
}

if docker_up; then
    log "dockerd: running"
else
    dockerd_pid=""
    if dockerd_pidfile_alive; then
        log "dockerd: a dockerd process exists but does not answer yet; waiting for it"
    else
        command -v dockerd >/dev/null || die "dockerd not found"
        log "dockerd: starting (log: $DOCKERD_LOG)"
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        dockerd_pid=$!
    fi
    t0=$(now_us)
    deadline=$((t0 + DOCKERD_TIMEOUT_S * 1000000))
    until docker_up; do
        if [[ -n $dockerd_pid ]] && ! proc_alive "$dockerd_pid" && ! dockerd_pidfile_alive; then
            dockerd_fail "dockerd exited during startup"
        fi
        (($(now_us) < deadline)) || dockerd_fail "dockerd did not answer within ${DOCKERD_TIMEOUT_S} s"
        sleep 0.2
    done
    log "dockerd: answering after $(fmt_s $(($(now_us) - t0)))"
fi

# ---------------------------------------------------------------------------------------------------
# 3. the busybox test image (MACHINE-NOTES §3.3)
# ---------------------------------------------------------------------------------------------------

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    log "image $IMAGE: present"
else
    log "image $IMAGE: building from /bin/busybox (busybox-static)"
    [[ -x /bin/busybox ]] || die "/bin/busybox missing (busybox-static)"
    tmpdir=$(mktemp -d)
    rootfs=$tmpdir/rootfs
    mkdir -p "$rootfs"/{bin,etc/udhcpc,tmp,root,proc,sys,dev,var/run}
    chmod 755 "$rootfs"
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    mapfile -t applets < <(/bin/busybox --list)
    ((${#applets[@]} > 0)) || die "busybox --list gave no applets"
    for a in "${applets[@]}"; do
        [[ $a == busybox ]] || ln -s busybox "$rootfs/bin/$a"
    done
    ln -s bin "$rootfs/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    # Debian's busybox has CONFIG_UDHCPC_DEFAULT_SCRIPT=/etc/udhcpc/default.script; without it udhcpc
    # obtains a lease but configures nothing.
    cat >"$rootfs/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "${router:-}" ]; then for r in $router; do ip route replace default via "$r" dev "$interface"; break; done; fi
    echo "udhcpc: $1 $interface $ip/${mask:-24} router=${router:-none}" ;;
esac
exit 0
EOF
    chmod 755 "$rootfs/etc/udhcpc/default.script"
    tar -C "$rootfs" --numeric-owner -c . |
        "$DOCKER" import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
    rm -rf -- "$tmpdir"
    tmpdir=""
    log "image $IMAGE: imported (${#applets[@]} applets)"
fi

# ---------------------------------------------------------------------------------------------------
# 4. optional venv with the newest PyPI releases
# ---------------------------------------------------------------------------------------------------

if [[ -n $venv ]]; then
    if [[ -e $venv && ! -x $venv/bin/python && -n $(ls -A -- "$venv" 2>/dev/null) ]]; then
        die "$venv exists but is not a venv (no $venv/bin/python); remove it or choose another --venv"
    fi
    if [[ ! -x $venv/bin/python ]]; then
        log "venv $venv: creating from /usr/bin/python3"
        /usr/bin/python3 -m venv "$venv"
    elif ! grep -Eq '^home *= */usr/bin *$' "$venv/pyvenv.cfg" 2>/dev/null; then
        # Debian's python3-* modules and systemd-python's build need Debian's interpreter (§5).
        die "$venv was not built from /usr/bin/python3 (see $venv/pyvenv.cfg); remove it and rerun"
    fi
    if "$venv/bin/python" -c "$VENV_IMPORT_CHECK" >/dev/null 2>&1; then
        log "venv $venv: ${VENV_PACKAGES[*]} importable"
    else
        # pip reaches the index through an intercepting TLS proxy whose CA is in the system bundle.
        if [[ -z ${PIP_CERT:-} && -f $CA_BUNDLE ]]; then
            export PIP_CERT=$CA_BUNDLE
        fi
        log "venv $venv: pip install --upgrade ${VENV_PACKAGES[*]}"
        timeout 600 "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade \
            "${VENV_PACKAGES[@]}" >&2 || die "pip install into $venv failed"
        "$venv/bin/python" -c "$VENV_IMPORT_CHECK" || die "venv $venv: imports still fail after pip install"
    fi
fi

log "done in $(fmt_s $(($(now_us) - start_us)))"
