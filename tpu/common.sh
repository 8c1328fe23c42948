# shellcheck shell=bash
# Shared by the tpu/*.sh scripts (sourced, not run). Settings, from the
# environment:
#   ZONE     the TPU's zone, e.g. us-central2-b (required)
#   PROJECT  the Google Cloud project (default: gcloud's configured project)
# On the workers the code lives in ~/gen_jax, with its virtualenv in
# ~/gen_jax/.venv (tpu/setup.sh puts them there).

set -euo pipefail

# shellcheck disable=SC2034  # used by the scripts that source this file
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034
REMOTE_DIR="gen_jax"

die() {
  echo "error: $*" >&2
  exit 2
}

if [[ -z "${ZONE:-}" ]]; then
  die "set ZONE to the TPU's zone, e.g. ZONE=us-central2-b $0 ..."
fi
GCLOUD_FLAGS=(--zone="$ZONE")
if [[ -n "${PROJECT:-}" ]]; then
  GCLOUD_FLAGS+=(--project="$PROJECT")
fi

# gcloud compute tpus tpu-vm SUBCOMMAND ARGS... in $ZONE (and $PROJECT).
tpu_vm() {
  gcloud compute tpus tpu-vm "$@" "${GCLOUD_FLAGS[@]}"
}

# Runs a bash command on every worker of TPU $1, from ~/gen_jax if it exists.
on_all_workers() {
  local name="$1" command="$2"
  tpu_vm ssh "$name" --worker=all --command="$command"
}

# Number of hosts (workers) of TPU $1.
num_hosts() {
  local ips
  ips="$(tpu_vm describe "$1" --format='value(networkEndpoints[].ipAddress)')"
  [[ -n "$ips" ]] || die "cannot describe TPU $1 in zone $ZONE"
  tr ';' '\n' <<<"$ips" | grep -c .
}

# The environment variables that a run needs from the caller's shell, as a
# quoted `env NAME=VALUE ...` prefix (empty if none is set). W&B reads its key
# from WANDB_API_KEY, or from `wandb login` run once on each worker.
forwarded_env() {
  local out="" name
  for name in WANDB_API_KEY WANDB_MODE WANDB_ENTITY WANDB_PROJECT \
      TFDS_DATA_DIR GEN_JAX_CACHE; do
    if [[ -n "${!name:-}" ]]; then
      out+=" $name=$(printf '%q' "${!name}")"
    fi
  done
  if [[ -n "$out" ]]; then
    echo "env$out"
  fi
}
