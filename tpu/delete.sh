#!/usr/bin/env bash
# Deletes a TPU VM (its local disks too: keep runs on a shared workdir).
#
# usage: ZONE=us-central2-b tpu/delete.sh NAME

# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"

if [[ $# -ne 1 ]]; then
  die "usage: ZONE=... $0 NAME"
fi
tpu_vm delete "$1" --quiet
