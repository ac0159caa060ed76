#!/usr/bin/env bash
# A single-node Slurm on localhost, for the cluster integration test:
# Debian's slurm-wlm (22.05) and munge, slurmctld and slurmd as root, a
# minimal slurm.conf with one node of 2 CPUs and one partition.
#
#   scripts/slurm-local.sh install   # apt-get install slurm-wlm munge (root)
#   scripts/slurm-local.sh start     # write the config, start munged, slurmctld, slurmd
#   scripts/slurm-local.sh stop
#   scripts/slurm-local.sh status    # exit 0 when the node takes jobs
set -euo pipefail

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
CPUS=${SLURM_LOCAL_CPUS:-2}

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "slurm-local: needs root (it starts slurmctld and slurmd)" >&2
    exit 2
  fi
}

install() {
  need_root
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
}

write_config() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
  local mem
  mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
  cat >"$CONF_DIR/slurm.conf" <<CONF
ClusterName=reusebench-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MaxArraySize=1001
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeHostname=localhost CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  need_root
  write_config
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || runuser -u munge -- munged || munged --force
  pgrep -x slurmctld >/dev/null || slurmctld -c -i
  pgrep -x slurmd >/dev/null || slurmd -N localhost
  for _ in $(seq 1 30); do
    if status >/dev/null 2>&1; then
      echo "slurm-local: up (partition debug, $CPUS CPUs)"
      return 0
    fi
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm-local: the node did not come up; see $LOG_DIR" >&2
  exit 1
}

stop() {
  scancel --user=root >/dev/null 2>&1 || true
  pkill -x slurmd || true
  pkill -x slurmctld || true
  pkill -x munged || true
}

status() {
  sinfo -h -N -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
