#!/usr/bin/env bash
# Starts a W&B sweep agent (`wandb agent ENTITY/PROJECT/SWEEP_ID`) on each of
# the given single-host TPU VMs, detached; each agent runs one trial at a time
# over all chips of its VM, with the command of the sweep file (the repository
# is ~/gen_jax and its virtualenv is active). Trials without --workdir write
# to ~/gen_jax/runs/ on the VM and log to W&B (online under an agent).
#
# usage: ZONE=us-central2-b tpu/sweep_agent.sh [--count=N] ENTITY/PROJECT/SWEEP_ID NAME [NAME...]
#   e.g. ZONE=us-central2-b tpu/sweep_agent.sh --count=20 me/gen_jax/abc123 tpu-a tpu-b
#
# --count=N: each agent stops after N trials (default: until the sweep ends).
# Stop an agent: gcloud compute tpus tpu-vm ssh NAME --worker=0 \
#   --command='pkill -f "wandb agent"'
# Multi-host slices are refused: each host would run its own agent and get a
# different trial from W&B, while a trial needs every host of the slice. Use
# several single-host VMs (v4-8, v5litepod-8, v5p-8, v6e-8), or run trials on
# a slice one at a time with tpu/run.sh.

# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"

count=""
if [[ "${1:-}" == --count=* ]]; then
  count="${1#--count=}"
  [[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer"
  shift
fi
if [[ $# -lt 2 ]]; then
  die "usage: ZONE=... $0 [--count=N] ENTITY/PROJECT/SWEEP_ID NAME [NAME...]"
fi
sweep="$1"
shift
[[ "$sweep" == */*/* ]] || die "the sweep is ENTITY/PROJECT/SWEEP_ID, not '$sweep'"

for name in "$@"; do
  hosts="$(num_hosts "$name")"
  if [[ "$hosts" != 1 ]]; then
    die "$name has $hosts hosts; a W&B agent per host would give each host a" \
      "different trial. Use single-host TPU VMs, or tpu/run.sh on $name"
  fi
done

agent=".venv/bin/wandb agent"
if [[ -n "$count" ]]; then
  agent+=" --count $count"
fi
agent+=" $(printf '%q' "$sweep")"
log="agent-$(date +%Y%m%d-%H%M%S).log"
for name in "$@"; do
  tpu_vm ssh "$name" --worker=0 --command="cd $REMOTE_DIR && \
    . .venv/bin/activate && nohup $(forwarded_env) $agent > $log 2>&1 < /dev/null &"
  echo "agent started on $name; log: ~/$REMOTE_DIR/$log"
done
