#!/usr/bin/env bash
# Runs `python -m gen_jax.main FLAGS...` on every worker of a TPU VM, one
# process per host; jax.distributed finds its peers by itself on TPU VMs.
# Give a --workdir that every host sees (a multi-host run stops otherwise):
# /gcs/BUCKET/... after `BUCKET=... tpu/setup.sh`, or an NFS path. Running the
# same command again resumes from the workdir's latest checkpoint.
#
# usage: ZONE=us-central2-b tpu/run.sh [--detach] NAME FLAGS...
#   e.g. ZONE=us-central2-b WANDB_MODE=online tpu/run.sh gen-jax \
#          --config=configs/dcgan.py:cifar10 --workdir=/gcs/my-bucket/dcgan
#
# Without --detach the output of all workers streams here, and the run stops
# when this ssh session ends; with --detach each worker runs it under nohup
# and writes ~/gen_jax/run-DATE.log (follow worker 0's with
# `gcloud compute tpus tpu-vm ssh NAME --worker=0 --command='tail -f gen_jax/run-*.log'`).
# WANDB_API_KEY, WANDB_MODE, WANDB_ENTITY, WANDB_PROJECT, TFDS_DATA_DIR and
# GEN_JAX_CACHE are passed on to the workers when set here.

# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"

detach=0
if [[ "${1:-}" == --detach ]]; then
  detach=1
  shift
fi
if [[ $# -lt 2 ]]; then
  die "usage: ZONE=... $0 [--detach] NAME --config=... --workdir=... [FLAGS...]"
fi
name="$1"
shift

flags=""
for flag in "$@"; do
  flags+=" $(printf '%q' "$flag")"
done
command="$(forwarded_env) .venv/bin/python -m gen_jax.main$flags"
if [[ "$detach" == 1 ]]; then
  log="run-$(date +%Y%m%d-%H%M%S).log"
  command="nohup $command > $log 2>&1 < /dev/null &"
fi
on_all_workers "$name" "cd $REMOTE_DIR && $command"
if [[ "$detach" == 1 ]]; then
  echo "started on every worker of $name; logs: ~/$REMOTE_DIR/$log"
fi
