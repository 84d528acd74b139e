#!/usr/bin/env bash
# scripts/slurm/setup.sh: a one-node Slurm cluster on this machine (controller and compute node on
# localhost) for the slow test tests/test_slurm.py. Needs root and Debian (apt-get). Idempotent: a
# second call restarts the daemons with the same config.
#
#   sudo bash scripts/slurm/setup.sh        # then: srun -N1 hostname
#
# What it does: apt-get installs slurm-wlm and munge, writes a munge key (owner munge, mode 400),
# starts munged, writes /etc/slurm/slurm.conf (proctrack/linuxproc, task/none, select/cons_tres,
# no accounting, one node with this machine's CPUs and memory, one partition `debug`), starts
# slurmctld and slurmd, and waits until `srun -N1 hostname` answers. Exit 0 when Slurm works,
# non-zero (with the reason on stderr) when it cannot start.
set -euo pipefail

log() { echo "slurm-setup: $*" >&2; }
if [ "$(id -u)" != 0 ]; then log "needs root (apt-get, /etc/slurm, daemons)"; exit 1; fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    log "installing slurm-wlm and munge (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# munge: a key only root and munge can read; --force because the key dir checks fail in containers
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 400 /etc/munge/munge.key
chmod 755 /run/munge
if ! munge -n >/dev/null 2>&1; then
    pkill -x munged 2>/dev/null || true
    sudo_munge="runuser -u munge --"
    command -v runuser >/dev/null 2>&1 || sudo_munge=""
    $sudo_munge munged --force
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)   # 90 %: slurmd refuses a node claiming more than it has
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
# written by scripts/slurm/setup.sh: one node, controller and compute on $HOST
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

# restart both daemons with this config (pids from their pid files only)
for daemon in slurmctld slurmd; do
    if [ -s "/run/$daemon.pid" ] && kill -0 "$(cat "/run/$daemon.pid")" 2>/dev/null; then
        kill "$(cat "/run/$daemon.pid")" || true
        sleep 1
    fi
done
slurmctld
slurmd

log "waiting for the node to answer srun ..."
for _ in $(seq 1 60); do
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    if timeout 20 srun -N1 hostname >/dev/null 2>&1; then
        log "ok: srun -N1 hostname works on $HOST ($CPUS CPUs, ${MEM_MB} MB)"
        exit 0
    fi
    sleep 2
done
log "Slurm did not come up; see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log"
sinfo >&2 || true
exit 1
