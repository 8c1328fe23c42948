"""Inception-based metrics: FID, KID, IS, precision/recall, density/coverage.

Features come from the FID Inception-v3 (`gen_jax.models.inception`) with
pytorch-fid's pretrained weights, which the user supplies once; nothing is
downloaded. `get_inception()` finds them (argument, then
$GEN_JAX_INCEPTION_WEIGHTS, then `$GEN_JAX_CACHE/inception/`), checks them and
returns `(Inception, '')`, or `(None, message)` when there are none: the
message is one line naming the file to supply and where, and callers skip the
Inception metrics (the domain metrics do not need it).

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a torch state
dict). `python -m gen_jax.fid convert IN.pth OUT.npz` (needs torch, once)
writes the same arrays under the same keys to an .npz, with the .pth's sha256
and a hash of the arrays inside; the .npz loads without torch. A .pth loads
directly when torch is installed. Checksum: by torch.hub's convention
(`HASH_REGEX` in the file name, checked by `check_hash=True`) the 8 hex digits
in the name are the first 8 of the file's sha256; a file whose sha256 does
not start with them is refused (`sha256_prefix=None` skips this, for tests).

The protocol (`Protocol`) is returned with every set of numbers, and
reference statistics are cached per dataset, split, resolution and protocol
(`reference_features`).
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np

from gen_jax.errors import DataError
from gen_jax.metrics import image_sets
from gen_jax.metrics.classifier import cache_dir
from gen_jax.models import inception as net

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
CONVERTED_FILE = "pt_inception-2015-12-05-6726825d.npz"
SHA256_PREFIX = "6726825d"
ENV_VAR = "GEN_JAX_INCEPTION_WEIGHTS"
NPZ_FORMAT = "gen_jax.inception/1"
_META_KEY = "__gen_jax_meta__"
# Part of every protocol id: bump when the network or the statistics change.
FEATURES_VERSION = 1
PR_K = 3  # Kynkaanniemi et al. 2019
DC_K = 5  # Naeem et al. 2020
IS_SPLITS = 10


def weights_dir() -> pathlib.Path:
  return cache_dir() / "inception"


def find_weights(path: str | os.PathLike | None = None) -> pathlib.Path | None:
  """`path`, else $GEN_JAX_INCEPTION_WEIGHTS, else the converted .npz or the
  .pth in `weights_dir()`; None when none of them names an existing file."""
  for candidate in (path, os.environ.get(ENV_VAR)):
    if candidate:
      return pathlib.Path(candidate).expanduser()
  for name in (CONVERTED_FILE, WEIGHTS_FILE):
    if (weights_dir() / name).is_file():
      return weights_dir() / name
  return None


def missing_message() -> str:
  return (f"Inception metrics skipped: no Inception weights. Supply "
          f"pytorch-fid's {WEIGHTS_FILE}, converted once with `python -m "
          f"gen_jax.fid convert {WEIGHTS_FILE} {CONVERTED_FILE}` (needs "
          f"torch), as {weights_dir() / CONVERTED_FILE} or via ${ENV_VAR}")


def sha256_file(path: str | os.PathLike) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _arrays_sha256(state: dict[str, np.ndarray]) -> str:
  h = hashlib.sha256()
  for key in sorted(state):
    a = np.ascontiguousarray(state[key], np.float32)
    h.update(f"{key}:{a.shape};".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _check_prefix(path, digest: str, sha256_prefix: str | None) -> None:
  if sha256_prefix and not digest.startswith(sha256_prefix):
    raise DataError(
        f"Inception weights {path}: sha256 {digest[:16]}... does not start "
        f"with {sha256_prefix}, the hash in pytorch-fid's {WEIGHTS_FILE}; "
        "supply that file (or its conversion)")


def read_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A torch state dict file as numpy arrays (needs torch)."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise DataError(f"reading {path} needs torch (pip install torch); or "
                    "convert it once where torch is installed with `python -m "
                    "gen_jax.fid convert IN.pth OUT.npz`") from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"cannot read Inception weights {path}: "
                    f"{str(e).splitlines()[0] if str(e) else e!r}") from None
  return {k: v.detach().cpu().numpy() for k, v in state.items()}


def convert(pth: str | os.PathLike, npz: str | os.PathLike, *,
            sha256_prefix: str | None = SHA256_PREFIX) -> str:
  """Writes pytorch-fid's .pth as an .npz loadable without torch.

  The .npz holds the state dict's arrays under the same keys and, under
  `__gen_jax_meta__`, JSON with the format, the source file's name and
  sha256, and the sha256 of the arrays. Returns the source's sha256.
  """
  digest = sha256_file(pth)
  _check_prefix(pth, digest, sha256_prefix)
  state = read_pth(pth)
  try:
    net.variables_from_state_dict(state)
  except ValueError as e:
    raise DataError(f"Inception weights {pth}: {e}") from None
  save_npz(npz, state, source=os.path.basename(pth), source_sha256=digest)
  return digest


def save_npz(path: str | os.PathLike, state: dict[str, np.ndarray], *,
             source: str, source_sha256: str) -> None:
  """The converted format: `state`'s arrays and the meta JSON (`convert`)."""
  meta = {"format": NPZ_FORMAT, "source": source,
          "source_sha256": source_sha256,
          "arrays_sha256": _arrays_sha256(state)}
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  _atomic_savez(path, **state, **{_META_KEY: np.array(json.dumps(meta))})


def _atomic_savez(path: pathlib.Path, **arrays) -> None:
  """np.savez to a temporary file then a rename: whole or not at all."""
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
  with os.fdopen(fd, "wb") as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)


def load_state(path: str | os.PathLike, *,
               sha256_prefix: str | None = SHA256_PREFIX
               ) -> tuple[dict[str, np.ndarray], str]:
  """(state dict as numpy, the source .pth's sha256) from a .pth or .npz."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"Inception weights {path} (from ${ENV_VAR} or the "
                    "argument) is not a file")
  if path.suffix != ".npz":
    digest = sha256_file(path)
    _check_prefix(path, digest, sha256_prefix)
    return read_pth(path), digest
  try:
    with np.load(path, allow_pickle=False) as f:
      state = {k: f[k] for k in f.files}
    meta = json.loads(str(state.pop(_META_KEY)))
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"cannot read Inception weights {path}: not an .npz "
                    f"written by `python -m gen_jax.fid convert` ({e})") from None
  if meta.get("format") != NPZ_FORMAT:
    raise DataError(f"Inception weights {path}: format {meta.get('format')!r},"
                    f" expected {NPZ_FORMAT!r}; convert the .pth again")
  if _arrays_sha256(state) != meta["arrays_sha256"]:
    raise DataError(f"Inception weights {path}: the arrays do not match the "
                    "hash recorded at conversion (corrupted file); convert "
                    "the .pth again")
  _check_prefix(path, meta["source_sha256"], sha256_prefix)
  return state, meta["source_sha256"]


@jax.jit
def inception_apply(variables, images) -> dict[str, jax.Array]:
  """Pure features of (N, H, W, 3) float images in [0, 1]: `pool` (N, 2048),
  `logits_unbiased` (N, 1008). Jit-able and shardable over the batch."""
  out = net.InceptionV3().apply(variables, images)
  return {"pool": out["pool"], "logits_unbiased": out["logits_unbiased"]}


def to_unit_range(images, value_range=None) -> np.ndarray:
  """(N, H, W, 3) float32 in [0, 1] from uint8 (0..255) or floats in
  `value_range` (default (0, 1)); (N, H, W) and one channel become RGB."""
  x = np.asarray(images)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"expected (N, H, W, C) images with C = 1 or 3, got "
                     f"shape {x.shape}")
  if x.dtype == np.uint8:
    x = x.astype(np.float32) / 255.0
  else:
    lo, hi = value_range or (0.0, 1.0)
    x = (x.astype(np.float32) - lo) / (hi - lo)
  return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


class Inception:
  """Loaded weights and the host-side batching around `inception_apply`."""

  def __init__(self, variables, source_sha256: str, path: str = ""):
    self.variables = jax.device_put(variables)
    self.source_sha256 = source_sha256
    self.path = path

  def features(self, images, value_range=None, *,
               batch_size: int = 50) -> dict[str, np.ndarray]:
    """`pool` (N, 2048) and `logits_unbiased` (N, 1008) of `images`
    (see `to_unit_range`), in fixed-size padded batches (one compile)."""
    return concat_features(self.features_batches([images], value_range,
                                         batch_size=batch_size))

  def features_batches(self, chunks: Iterable, value_range=None, *,
                       batch_size: int = 50) -> Iterator[dict[str, np.ndarray]]:
    for chunk in chunks:
      x = to_unit_range(chunk, value_range)
      for start in range(0, len(x), batch_size):
        part = x[start:start + batch_size]
        pad = min(batch_size, len(x)) - len(part)
        out = inception_apply(self.variables, np.pad(
            part, ((0, pad), (0, 0), (0, 0), (0, 0))))
        yield {k: np.asarray(v)[:len(part)] for k, v in out.items()}


class ShardedInception(Inception):
  """The same features with each network call's batch sharded over the
  mesh's `data` axis (weights replicated): every device of a pod computes
  its share. Every process must call it with the same images (as the
  evaluation does: samples and reference are replicated on the hosts)."""

  def __init__(self, inception: Inception, mesh, per_device_batch: int = 50):
    from gen_jax import parallel  # pylint: disable=import-outside-toplevel
    rep = parallel.replicated(mesh)
    self.variables = jax.tree.map(
        lambda a: jax.make_array_from_callback(
            a.shape, rep, lambda idx, a=np.asarray(a): a[idx]),
        inception.variables)
    self.source_sha256, self.path = inception.source_sha256, inception.path
    self.devices = parallel.data_parallel_size(mesh)
    self.batch_size = per_device_batch * self.devices
    self._sharding = parallel.batch_sharding(mesh)
    self._apply = jax.jit(inception_apply,
                          in_shardings=(rep, self._sharding),
                          out_shardings=rep)

  def features_batches(self, chunks: Iterable, value_range=None, *,
                       batch_size: int | None = None
                       ) -> Iterator[dict[str, np.ndarray]]:
    """As `Inception.features_batches`; `batch_size` (global, default
    per_device_batch x devices) is rounded up to a multiple of the devices,
    and a set smaller than it is padded only to that multiple."""
    d = self.devices
    batch = -(-(batch_size or self.batch_size) // d) * d
    for chunk in chunks:
      x = to_unit_range(chunk, value_range)
      size = min(batch, -(-len(x) // d) * d)
      for start in range(0, len(x), size):
        part = x[start:start + size]
        padded = np.pad(part, ((0, size - len(part)), (0, 0), (0, 0), (0, 0)))
        images = jax.make_array_from_callback(
            padded.shape, self._sharding, lambda idx, p=padded: p[idx])
        out = self._apply(self.variables, images)
        yield {k: np.asarray(v)[:len(part)] for k, v in out.items()}


def concat_features(parts: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  parts = list(parts)
  if not parts:
    return {"pool": np.zeros((0, net.NUM_FEATURES), np.float32),
            "logits_unbiased": np.zeros((0, net.NUM_LOGITS), np.float32)}
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


_LOADED: dict[tuple, Inception] = {}


def get_inception(path: str | os.PathLike | None = None, *,
                  sha256_prefix: str | None = SHA256_PREFIX
                  ) -> tuple[Inception | None, str]:
  """(Inception, '') or (None, one-line message) when no weights are found.

  A file that is found but wrong (checksum, keys, shapes, unreadable) raises
  DataError: the user asked for it, so it is never skipped silently.
  """
  found = find_weights(path)
  if found is None:
    return None, missing_message()
  key = (str(found), sha256_prefix)
  if key not in _LOADED:
    state, digest = load_state(found, sha256_prefix=sha256_prefix)
    try:
      variables = net.variables_from_state_dict(state)
    except ValueError as e:
      raise DataError(f"Inception weights {found}: {e}") from None
    _LOADED[key] = Inception(variables, digest, str(found))
  return _LOADED[key], ""


# --- protocol and reference statistics ---------------------------------------

@dataclasses.dataclass(frozen=True)
class Protocol:
  """Everything a reader needs to compare a number with another one."""
  reference: str  # 'cifar10:train', a folder or an .npz
  num_real: int
  num_fake: int
  weights_sha256: str
  network: str = ("pytorch-fid FID Inception-v3 (TF 2015-12-05 graph), "
                  "pool3 2048-d; IS on the 1008-way logits without bias")
  resize: str = ("bilinear to 299x299, half-pixel centres, no antialias "
                 "(torch F.interpolate align_corners=False, as pytorch-fid)")
  normalise: str = "[0, 1] -> 2x - 1; uint8 / 255 first"
  kid: str = "cubic polynomial kernel, unbiased, 100 subsets of <= 1000"
  inception_score: str = "10 splits, rows shuffled (RandomState(2020))"
  precision_recall_k: int = PR_K
  density_coverage_k: int = DC_K
  features_version: int = FEATURES_VERSION


def batch_features(inception: Inception, batches: Iterable[dict],
                   value_range=None, *, batch_size: int = 50
                   ) -> dict[str, np.ndarray]:
  """`Inception.features` of batches {'x': images, 'label'?: (B,) labels},
  with the labels concatenated as `label` when every batch has them."""
  labels = []

  def images():
    for batch in batches:
      if batch.get("label") is not None:
        labels.append(np.asarray(batch["label"]))
      yield batch["x"]
  out = concat_features(inception.features_batches(
      images(), value_range, batch_size=batch_size))
  if labels and sum(map(len, labels)) == len(out["pool"]):
    out["label"] = np.concatenate(labels)
  return out


def reference_features(inception: Inception, key: dict[str, Any],
                       chunks: Iterable[dict], *,
                       cache: str | os.PathLike | None = None
                       ) -> dict[str, np.ndarray]:
  """Features of a real set, computed once and cached by `key` + weights.

  Args:
    inception: the network (its weights' sha256 is part of the cache key).
    key: what identifies the set, e.g. {'dataset': 'cifar10', 'split':
      'train', 'image_size': 32, 'fingerprint': ...}; JSON-serialisable.
    chunks: batches {'x': images in [0, 1] or uint8, 'label'?: (B,)},
      consumed only when the cache misses (see `batch_features`).
    cache: directory (default `$GEN_JAX_CACHE/inception_stats`).

  Returns:
    `pool`, `logits_unbiased`, `mu` (2048,), `sigma` (2048, 2048) and
    `label` when the batches have labels. The file name shows the dataset,
    split and resolution and ends in a hash of the key, the weights and
    `FEATURES_VERSION`.
  """
  full = {**key, "weights_sha256": inception.source_sha256,
          "features_version": FEATURES_VERSION}
  digest = hashlib.sha256(json.dumps(full, sort_keys=True).encode())
  stem = "_".join(str(key[k]) for k in ("dataset", "split", "image_size")
                  if k in key) or "set"
  root = pathlib.Path(cache) if cache is not None else cache_dir() / (
      "inception_stats")
  path = root / f"{stem.replace('/', '_')}_{digest.hexdigest()[:12]}.npz"
  if path.exists():
    with np.load(path) as f:
      return {k: f[k] for k in f.files if k != "key"}
  print(f"computing Inception features of {stem} (once; cached in {path})",
        file=sys.stderr)
  out = batch_features(inception, chunks)
  if len(out["pool"]) < 2:
    raise DataError(f"reference set {stem}: {len(out['pool'])} images; need "
                    "at least 2")
  out["mu"], out["sigma"] = feature_stats(out["pool"])
  root.mkdir(parents=True, exist_ok=True)
  _atomic_savez(path, **out, key=np.array(json.dumps(full)))
  return out


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) of (N, D) features, float64, covariance with ddof 1."""
  f = np.asarray(features, np.float64)
  return f.mean(0), np.cov(f, rowvar=False)


def inception_metrics(fake: dict[str, np.ndarray], real: dict[str, np.ndarray],
                      *, kid_subsets: int = 100, kid_subset_size: int = 1000,
                      seed: int = 0) -> dict[str, float]:
  """FID, KID, IS, precision/recall, density/coverage, intra-class FID.

  Args:
    fake, real: `Inception.features` outputs (or `reference_features`):
      `pool` (N, 2048), optionally `logits_unbiased` (IS of that set),
      `mu`/`sigma` (used for FID when present) and `label` (intra-class FID
      when both sets have labels).
    kid_subsets, kid_subset_size, seed: KID's subsets (`kernel_distance`).

  Returns:
    fid, kid, kid_std; precision, recall (when both sets have more than
    PR_K examples); density, coverage (more than DC_K real examples); is /
    is_std of `fake` and is_real / is_real_std of `real` (sets with logits
    and at least IS_SPLITS examples); intra_fid when both sets have (N,)
    labels.
  """
  def stats(d):
    return (d["mu"], d["sigma"]) if "mu" in d else feature_stats(d["pool"])
  out = {"fid": image_sets.frechet_distance_from_stats(*stats(fake),
                                                       *stats(real))}
  out["kid"], out["kid_std"] = image_sets.kernel_distance(
      fake["pool"], real["pool"], num_subsets=kid_subsets,
      subset_size=kid_subset_size, seed=seed)
  n_fake, n_real = len(fake["pool"]), len(real["pool"])
  if min(n_fake, n_real) > PR_K:
    out["precision"], out["recall"] = image_sets.precision_recall(
        fake["pool"], real["pool"], k=PR_K)
  if n_real > DC_K:
    out["density"], out["coverage"] = image_sets.density_coverage(
        fake["pool"], real["pool"], k=DC_K)
  for name, d in (("is", fake), ("is_real", real)):
    if len(d.get("logits_unbiased", ())) >= IS_SPLITS:
      out[name], out[f"{name}_std"] = image_sets.inception_score(
          d["logits_unbiased"], splits=IS_SPLITS)
  if all(np.ndim(d.get("label")) == 1 for d in (fake, real)):
    out["intra_fid"] = image_sets.intra_class_fid(
        fake["pool"], fake["label"], real["pool"], real["label"])["intra_fid"]
  return out
