#!/usr/bin/env bash
# Creates a TPU VM (one host, or a multi-host pod slice).
#
# usage: ZONE=us-central2-b tpu/create.sh NAME ACCELERATOR_TYPE [RUNTIME_VERSION]
#   e.g. ZONE=us-central2-b tpu/create.sh gen-jax v4-32
#        ZONE=us-west4-a SPOT=1 tpu/create.sh gen-jax v5litepod-16
#
# RUNTIME_VERSION defaults to the base image for the accelerator's generation
# (v4: tpu-ubuntu2204-base, v5e: v2-alpha-tpuv5-lite, v5p: v2-alpha-tpuv5,
# v6e: v2-alpha-tpuv6e). SPOT=1 asks for a Spot VM (cheaper, preemptible:
# the training loop saves on SIGTERM and resumes when run again).
# Then: tpu/setup.sh NAME, tpu/run.sh NAME --config=... --workdir=...

# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"

if [[ $# -lt 2 || $# -gt 3 ]]; then
  die "usage: ZONE=... $0 NAME ACCELERATOR_TYPE [RUNTIME_VERSION]"
fi
name="$1"
accelerator="$2"
case "$accelerator" in
  v4-*) default_version="tpu-ubuntu2204-base" ;;
  v5litepod-*) default_version="v2-alpha-tpuv5-lite" ;;
  v5p-*) default_version="v2-alpha-tpuv5" ;;
  v6e-*) default_version="v2-alpha-tpuv6e" ;;
  *) default_version="" ;;
esac
version="${3:-$default_version}"
if [[ -z "$version" ]]; then
  die "no default runtime version for $accelerator; give one as the third argument"
fi

extra=()
if [[ "${SPOT:-0}" == 1 ]]; then
  extra+=(--spot)
fi
tpu_vm create "$name" --accelerator-type="$accelerator" \
  --version="$version" "${extra[@]}"
echo "created $name ($accelerator, $version, $(num_hosts "$name") host(s))"
