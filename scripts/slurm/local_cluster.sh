#!/usr/bin/env bash
# A real SLURM cluster on one machine, for the tests and CI: Debian's munged, slurmctld and two
# slurmd (`slurmd -N n1`, `slurmd -N n2`) that simulate the nodes n1 and n2 (both 127.0.0.1,
# 2 CPUs each, one partition "local" with both, no accounting). Everything it writes -- slurm.conf,
# the munge key and socket, state, spool, pid files, one log per daemon -- lives in DIR, on free
# ports (the first free 16817+10k, +1, +2), so it never touches /etc/slurm, /etc/munge or a system
# munged/slurmd beside it, and clusters in different DIRs can run side by side.
#
# Usage:
#   scripts/slurm/local_cluster.sh install     apt-get slurmctld slurmd slurm-client munge if missing
#   scripts/slurm/local_cluster.sh start DIR   start the cluster in DIR (created if needed); waits
#                                              until both nodes are idle, then prints the exports
#   scripts/slurm/local_cluster.sh env DIR     print the exports for the cluster in DIR
#   scripts/slurm/local_cluster.sh stop DIR    cancel its jobs, stop its daemons (pid files in DIR)
#
#   eval "$(scripts/slurm/local_cluster.sh start /tmp/slurm)"
#   srun -N 2 -n 2 hostname; sbatch --wait job.sh
#   scripts/slurm/local_cluster.sh stop /tmp/slurm
#
# The daemons run as the calling user (root in CI). The node names n1/n2 do not resolve: programs
# that look up the first node of SLURM_NODELIST (PyTorch Lightning's MASTER_ADDR) need
# MASTER_ADDR=127.0.0.1. More tasks than the 2 CPUs of a node need `srun --overcommit` (-O).
# A SLURM_* variable inherited from an outer job would point srun at that job: clear them first.
set -euo pipefail

PATH="$PATH:/usr/sbin:/sbin"
readonly START_TIMEOUT_S=30
readonly STOP_TIMEOUT_S=15
readonly BINARIES=(munged slurmctld slurmd srun sbatch sinfo squeue scancel)
readonly NODES=(n1 n2)

log() { echo "local_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

missing_binaries() {
    local binary
    for binary in "${BINARIES[@]}"; do
        command -v "$binary" >/dev/null || echo "$binary"
    done
}

cmd_install() {
    if [ -z "$(missing_binaries)" ]; then
        log "slurm and munge are installed"
        return
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
    [ -z "$(missing_binaries)" ] || die "still missing after apt-get: $(missing_binaries | xargs)"
}

# A TCP port nobody listens on (IPv4 or IPv6), from the ports in /proc/net/tcp{,6}.
port_is_free() {
    local hex
    hex=$(printf '%04X' "$1")
    ! awk -v port=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == port { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# The first of 16817, 16827, ... whose three ports (slurmctld, slurmd n1, slurmd n2) are free.
free_port_base() {
    local base
    for ((base = 16817; base < 26817; base += 10)); do
        if port_is_free "$base" && port_is_free $((base + 1)) && port_is_free $((base + 2)); then
            echo "$base"
            return
        fi
    done
    die "no free ports between 16817 and 26817"
}

# The pid in pid file $1 if that process is alive and runs program $2, else nothing.
live_pid() {
    local pid
    [ -s "$1" ] || return 0
    pid=$(<"$1")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
    return 0
}

print_env() {
    printf 'export SLURM_CONF=%q\n' "$1/slurm.conf"
}

show_logs() {
    local file
    for file in "$1"/*.log; do
        [ -e "$file" ] || continue
        log "---- last lines of $file ----"
        tail -n 25 "$file" >&2
    done
}

write_slurm_conf() {
    local dir=$1 base=$2 user host
    user=$(id -un)
    host=$(hostname -s)
    cat >"$dir/slurm.conf" <<EOF
# Written by local_cluster.sh: a one-machine test cluster, every path under $dir.
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$base
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# start a batch job within about a second of its submission, not up to 3 s later
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MailProg=/bin/true
KillWait=5
# sbatch --wait polls every 2 s while MinJobAge <= 5 (else at 2, 10, 20... s); the job stays visible
# for 5 s after it ends, longer than the 2 s between polls
MinJobAge=5
NodeName=n[1-2] NodeHostname=$host NodeAddr=127.0.0.1 Port=$((base + 1))-$((base + 2)) CPUs=2 State=UNKNOWN
PartitionName=local Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
    local dir=$1
    # munged wants the key readable by its owner only; --force turns its demand for a world-searchable
    # socket path (a private temp dir is not) into a warning: every client here is the same user
    install -d -m 755 "$dir/munge"
    (umask 077 && head -c 1024 /dev/urandom >"$dir/munge/munge.key")
    munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munged.log" \
        --seed-file="$dir/munge/munged.seed" --num-threads=4 --origin=127.0.0.1 --force
}

wait_until_idle() {
    local dir=$1 deadline=$((SECONDS + START_TIMEOUT_S)) states=""
    while ((SECONDS < deadline)); do
        states=$(sinfo -h -N -o '%N=%t' 2>/dev/null | sort -u | xargs || true)
        [ "$states" = "n1=idle n2=idle" ] && return
        sleep 0.5
    done
    log "nodes not idle after ${START_TIMEOUT_S}s (sinfo: '${states:-no answer}')"
    show_logs "$dir"
    cmd_stop "$dir" || true
    die "the cluster in $dir did not start"
}

cmd_start() {
    local dir base node
    [ -z "$(missing_binaries)" ] || die "missing $(missing_binaries | xargs): run $0 install"
    mkdir -p "$1"
    dir=$(cd "$1" && pwd -P)
    [ -z "$(live_pid "$dir/slurmctld.pid" slurmctld)" ] || die "a cluster is already running in $dir"
    # Unix sockets (munge's; slurmd's in the spool) must fit in 108 bytes
    ((${#dir} <= 70)) || die "path too long for unix sockets (${#dir} > 70 characters): $dir"
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^SLURM_' || true)
    export SLURM_CONF="$dir/slurm.conf"

    rm -rf "$dir/state" "$dir/spool" "$dir/munge" "$dir"/*.log "$dir"/*.pid
    mkdir -p "$dir/state" "$dir/spool/n1" "$dir/spool/n2"
    base=$(free_port_base)
    write_slurm_conf "$dir" "$base"
    log "starting munged, slurmctld (port $base), slurmd n1 and n2 in $dir"
    start_munged "$dir" || { show_logs "$dir"; die "munged did not start"; }
    slurmctld -i || { show_logs "$dir"; cmd_stop "$dir" || true; die "slurmctld did not start"; }
    for node in "${NODES[@]}"; do
        slurmd -N "$node" || { show_logs "$dir"; cmd_stop "$dir" || true; die "slurmd -N $node did not start"; }
    done
    wait_until_idle "$dir"
    # a job step on both nodes proves that munge credentials and task launch work
    if ! timeout 20 srun --nodes=2 --ntasks=2 --job-name=local-cluster-probe true; then
        show_logs "$dir"
        cmd_stop "$dir" || true
        die "a two-node srun failed on the cluster in $dir"
    fi
    log "cluster up: $(sinfo -h -o '%P %D nodes %t %N' | xargs)"
    print_env "$dir"
}

# Sends TERM to the daemons named by "PIDFILE:PROGRAM" arguments at once, waits for them to exit,
# KILLs those still alive after the timeout; a missing pid file or dead daemon is fine.
stop_daemons() {
    local spec pid pids=() deadline=$((SECONDS + STOP_TIMEOUT_S))
    for spec in "$@"; do
        pid=$(live_pid "${spec%:*}" "${spec##*:}")
        [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null && pids+=("$pid"); } || true
    done
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                log "pid $pid ignored TERM for ${STOP_TIMEOUT_S}s: KILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    done
    for spec in "$@"; do rm -f "${spec%:*}"; done
}

cmd_stop() {
    local dir deadline
    [ -d "$1" ] || return 0
    dir=$(cd "$1" && pwd -P)
    export SLURM_CONF="$dir/slurm.conf"
    # jobs first, so that no slurmstepd outlives its slurmd
    if [ -n "$(live_pid "$dir/slurmctld.pid" slurmctld)" ]; then
        scancel --quiet --full --partition=local 2>/dev/null || true
        deadline=$((SECONDS + STOP_TIMEOUT_S))
        while ((SECONDS < deadline)) && [ -n "$(squeue -h -t running,completing -o %i 2>/dev/null)" ]; do
            sleep 0.2
        done
    fi
    stop_daemons "$dir/slurmd-n1.pid:slurmd" "$dir/slurmd-n2.pid:slurmd" "$dir/slurmctld.pid:slurmctld" \
        "$dir/munge/munged.pid:munged"
    log "stopped the cluster in $dir"
}

main() {
    [ $# -ge 1 ] || usage
    case "$1" in
        install) [ $# -eq 1 ] || usage; cmd_install ;;
        start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
        stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
        env) [ $# -eq 2 ] || usage; [ -f "$2/slurm.conf" ] || die "no cluster in $2"; print_env "$(cd "$2" && pwd -P)" ;;
        *) usage ;;
    esac
}

main "$@"
