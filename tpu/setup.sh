#!/usr/bin/env bash
# Installs gen_jax on every worker of a TPU VM: copies this working tree
# (tracked and untracked files, not ignored ones) to ~/gen_jax and installs
# it with `jax[tpu]` into ~/gen_jax/.venv (Python 3.11, via uv). Run it again
# after changing the code. With BUCKET set, also mounts gs://BUCKET at
# /gcs/BUCKET on every worker (Cloud Storage FUSE), a workdir that all hosts
# share, as multi-host runs need.
#
# usage: ZONE=us-central2-b [BUCKET=my-bucket] tpu/setup.sh NAME

# shellcheck source=tpu/common.sh
source "$(dirname "$0")/common.sh"

if [[ $# -ne 1 ]]; then
  die "usage: ZONE=... [BUCKET=...] $0 NAME"
fi
name="$1"

archive="$(mktemp -d)/gen_jax.tgz"
trap 'rm -rf "$(dirname "$archive")"' EXIT
(cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - -czf "$archive")
tpu_vm scp "$archive" "$name:gen_jax.tgz" --worker=all

install=$(cat <<'REMOTE'
set -euo pipefail
mkdir -p gen_jax
tar -xzf gen_jax.tgz -C gen_jax
rm gen_jax.tgz
cd gen_jax
if [[ ! -x "$HOME/.local/bin/uv" ]]; then
  curl -LsSf https://astral.sh/uv/install.sh | sh
fi
uv="$HOME/.local/bin/uv"
if [[ ! -x .venv/bin/python ]]; then
  "$uv" venv --python 3.11 .venv
fi
"$uv" pip install --python .venv/bin/python --quiet -e ".[tpu]"
.venv/bin/python -c "import jax, gen_jax; print('installed: jax', jax.__version__)"
REMOTE
)
on_all_workers "$name" "$install"

if [[ -n "${BUCKET:-}" ]]; then
  mount=$(cat <<'REMOTE'
set -euo pipefail
if ! command -v gcsfuse >/dev/null; then
  echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-$(lsb_release -c -s) main" \
    | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null
  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
    | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
  sudo apt-get update -qq
  sudo apt-get install -y -qq gcsfuse
fi
sudo mkdir -p "/gcs/$BUCKET"
sudo chown "$USER" "/gcs/$BUCKET"
if ! mountpoint -q "/gcs/$BUCKET"; then
  # Orbax commits a checkpoint by renaming its directory: allow renames.
  gcsfuse --implicit-dirs --rename-dir-limit=200000 "$BUCKET" "/gcs/$BUCKET"
fi
REMOTE
)
  on_all_workers "$name" "BUCKET=$(printf '%q' "$BUCKET"); $mount"
  echo "gs://$BUCKET is mounted at /gcs/$BUCKET on every worker of $name"
fi
