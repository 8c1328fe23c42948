"""The device mesh, the shardings of state and batches, and multi-process
checks.

One way to parallelise: `jax.jit` over a `jax.make_mesh` mesh. Parameters and
optimizer state are replicated; batches and the generator's noise are sharded
along the `data` axis, so batch-norm statistics are over the global batch.
"""

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gen_jax.errors import ConfigError, UserError

DATA = "data"


def make_mesh(shape: Sequence[int] = (-1,), axes: Sequence[str] = (DATA,),
              num_devices: int = 0) -> Mesh:
  """A mesh over all devices, or the first `num_devices` (single process only,
  e.g. to check that results do not depend on the device count); one -1 in
  `shape` takes the remaining devices."""
  shape = list(shape)
  devices = jax.devices()
  if num_devices:
    if not 0 < num_devices <= len(devices) or jax.process_count() > 1:
      raise ConfigError(
          f"config.mesh.num_devices={num_devices} must be 0 (all devices) or "
          f"at most the {len(devices)} devices of a single-process run")
    devices = devices[:num_devices]
  n = len(devices)
  if len(shape) != len(axes) or DATA not in axes:
    raise ConfigError(f"config.mesh.shape {tuple(shape)} and config.mesh.axes "
                      f"{tuple(axes)} must have the same length and include "
                      f"{DATA!r}")
  if shape.count(-1) > 1:
    raise ConfigError("config.mesh.shape may contain at most one -1")
  if -1 in shape:
    known = int(np.prod([s for s in shape if s != -1]))
    if known <= 0 or n % known:
      raise ConfigError(f"config.mesh.shape {tuple(shape)} does not fit "
                        f"{n} devices")
    shape[shape.index(-1)] = n // known
  if int(np.prod(shape)) != n:
    raise ConfigError(f"config.mesh.shape {tuple(shape)} has "
                      f"{int(np.prod(shape))} devices, but there are {n}")
  return jax.make_mesh(tuple(shape), tuple(axes),
                       axis_types=(jax.sharding.AxisType.Auto,) * len(axes),
                       devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, leading: int = 0) -> NamedSharding:
  """Sharding of arrays whose axis `leading` is the batch axis."""
  return NamedSharding(mesh, P(*([None] * leading), DATA))


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape[DATA]


def check_batch_size(batch_size: int, mesh: Mesh, field: str,
                     process_count: int | None = None) -> None:
  """Stops before compiling if the global batch cannot be split evenly: each
  process loads `batch_size / process_count` examples, and each device on the
  data axis holds `batch_size / data_parallel_size`."""
  devices = data_parallel_size(mesh)
  processes = jax.process_count() if process_count is None else process_count
  unit = int(np.lcm(devices, processes))
  if batch_size % unit:
    lower = max(unit, batch_size // unit * unit)
    raise ConfigError(
        f"{field}={batch_size} must be divisible by the {devices} devices on "
        f"the mesh's data axis and the {processes} process(es); try {lower} "
        f"or {lower + unit}")


def constrainer(mesh: Mesh):
  """A function pinning a batch-major array to the data axis inside jit."""
  sharding = batch_sharding(mesh)
  return lambda x: jax.lax.with_sharding_constraint(x, sharding)


def global_batch(local: dict[str, np.ndarray], mesh: Mesh,
                 leading: int = 0) -> dict[str, jax.Array]:
  """Assembles process-local arrays into global arrays sharded on `data`.

  Axis `leading` of each local array is this process's slice of the batch.
  """
  sharding = batch_sharding(mesh, leading)
  out = {}
  for k, v in local.items():
    shape = list(v.shape)
    shape[leading] *= jax.process_count()
    out[k] = jax.make_array_from_process_local_data(sharding, v, tuple(shape))
  return out


def check_shared_directory(path: str) -> None:
  """Stops every process with one line unless all of them see the files that
  process 0 writes in `path`: checkpoints and the data positions in them are
  written by every process into one directory, so a multi-host workdir must
  be on a filesystem that all hosts share."""
  if jax.process_count() == 1:
    return
  token = int(multihost_utils.broadcast_one_to_all(
      np.int32(np.random.default_rng().integers(2**31 - 1))))
  marker = os.path.join(path, f".shared_check_{token}")
  if jax.process_index() == 0:
    with open(marker, "w"):
      pass
  multihost_utils.sync_global_devices("gen_jax_shared_check_written")
  sees = multihost_utils.process_allgather(np.int32(os.path.exists(marker)))
  multihost_utils.sync_global_devices("gen_jax_shared_check_read")
  if jax.process_index() == 0:
    os.remove(marker)
  blind = [i for i, seen in enumerate(np.asarray(sees)) if not seen]
  if blind:
    raise UserError(
        f"workdir {path!r} is not shared: process(es) "
        f"{', '.join(map(str, blind))} do not see what process 0 writes "
        "there; give a directory on a filesystem that every host mounts "
        "(NFS, Cloud Storage FUSE)")
