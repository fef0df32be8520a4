#!/usr/bin/env bash
# Install (Debian's slurm-wlm daemons and munge) and start a single-node SLURM on this machine, for the SLURM test
# (tests/test_slurm.py) and for trying tools/slurm/submit.sh. Needs root (or sudo) and apt-get; idempotent: a SLURM
# that already answers is left alone, and a slurm.conf that this script did not write is never replaced.
# No systemd needed: the daemons are started directly. Logs: /var/log/slurm/.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
node_ready() { sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

if command -v sinfo >/dev/null && node_ready; then
    echo "SLURM already running: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi

conf=/etc/slurm/slurm.conf
marker="# written by flairqc tools/slurm/start-local-slurm.sh"
host=$(hostname -s)
cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
if [ ! -e "$conf" ] || head -n 1 "$conf" | grep -qF "$marker"; then
    as_root mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    as_root tee "$conf" >/dev/null <<CONF
$marker
ClusterName=flairqc-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
fi

if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || as_root mungekey --create --keyfile=/etc/munge/munge.key
    as_root mkdir -p /run/munge /var/log/munge /var/lib/munge
    as_root chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    as_root chmod 0400 /etc/munge/munge.key
    as_root runuser -u munge -- /usr/sbin/munged
fi
pgrep -x slurmctld >/dev/null || as_root slurmctld
pgrep -x slurmd >/dev/null || as_root slurmd

for _ in $(seq 60); do
    if node_ready; then
        echo "SLURM started: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
        exit 0
    fi
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qiE 'down|drain'; then
        as_root scontrol update nodename="$host" state=resume || true
    fi
    sleep 1
done
echo "SLURM did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
sinfo >&2 || true
exit 1
