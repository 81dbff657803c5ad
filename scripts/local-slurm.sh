#!/usr/bin/env bash
# A real single-node Slurm on 127.0.0.1 with two fake GPUs, for mltui's Slurm tests (and to try it).
#
#   scripts/local-slurm.sh start DIR   install slurm + munge from Debian if missing, start munged,
#                                      slurmctld and slurmd with their files under DIR, wait for the
#                                      node; prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/local-slurm.sh stop DIR    stop what `start DIR` started
#
# Needs root (the daemons and the fake GPU devices), no systemd. Exit code 3 means "cannot run a
# local Slurm here" (not root, no package, ports taken): the Slurm tests skip with that reason.
set -uo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

stop() {
    if [ -f "$dir/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null; done < "$dir/pids"
        sleep 0.5
        while read -r pid; do kill -9 "$pid" 2>/dev/null; done < "$dir/pids"
        rm -f "$dir/pids"
    fi
}

cannot() {
    echo "local-slurm: $*" >&2
    stop
    exit 3
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || cannot "needs root (slurmd and the fake GPU devices), and this is uid $(id -u)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
        || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm is not installed and there is no apt-get to install it"
    echo "local-slurm: installing slurm and munge from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge) \
        >"$dir/apt.log" 2>&1 || cannot "could not install slurm (see $dir/apt.log)"
fi

if [ -f "$dir/pids" ] && sinfo -h -o %T >/dev/null 2>&1; then
    echo "export SLURM_CONF=$dir/slurm.conf"   # already running from this folder
    exit 0
fi
for port in 6817 6818 6819; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        cannot "port $port is in use (another Slurm is running?)"
    fi
done

host=$(hostname -s)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cpus=$(nproc)
mkdir -p "$dir/state" "$dir/spool" "$dir/log" /run/munge /var/log/munge /var/lib/munge
: > "$dir/pids"

# munge: a key, then the daemon as the munge user (it refuses to run as root)
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null
chmod 400 /etc/munge/munge.key
setpriv --reuid=munge --regid=munge --init-groups munged --foreground >"$dir/log/munged.log" 2>&1 &
echo $! >> "$dir/pids"

# two fake GPUs: character devices (regular files do not work as gres files)
for i in 0 1; do
    [ -c "/dev/fakegpu$i" ] || mknod "/dev/fakegpu$i" c 1 3 || cannot "cannot make /dev/fakegpu$i"
done

cat > "$dir/slurm.conf" <<CONF
ClusterName=mltui-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MinJobAge=600
MailProg=/bin/true
DefMemPerCPU=1024
# decide often, so a pending job says why (Resources) within a second or two, not at the next minute
SchedulerParameters=sched_interval=1,bf_interval=1
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$dir/gres.conf" <<CONF
AutoDetect=off
NodeName=$host Name=gpu File=/dev/fakegpu[0-1]
CONF

export SLURM_CONF="$dir/slurm.conf"
sleep 0.3
slurmctld -D -c -i -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 &
echo $! >> "$dir/pids"
slurmd -D -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 &
echo $! >> "$dir/pids"

for _ in $(seq 1 100); do
    state=$(sinfo -h -o %T 2>/dev/null | head -n1)
    case "$state" in
        idle*|mixed*|allocated*) echo "export SLURM_CONF=$SLURM_CONF"; exit 0 ;;
    esac
    sleep 0.2
done
cannot "the node did not come up (state: ${state:-none}; see $dir/log)"
