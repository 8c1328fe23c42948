"""The device mesh and the shardings of state and batches.

One way to parallelise: `jax.jit` over a `jax.make_mesh` mesh. Parameters and
optimizer state are replicated; batches and the generator's noise are sharded
along the `data` axis, so batch-norm statistics are over the global batch.
"""

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gen_jax.errors import ConfigError

DATA = "data"


def make_mesh(shape: Sequence[int] = (-1,),
              axes: Sequence[str] = (DATA,)) -> Mesh:
  """A mesh over all devices; one -1 in `shape` takes the remaining devices."""
  shape = list(shape)
  n = jax.device_count()
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
                       axis_types=(jax.sharding.AxisType.Auto,) * len(axes))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, leading: int = 0) -> NamedSharding:
  """Sharding of arrays whose axis `leading` is the batch axis."""
  return NamedSharding(mesh, P(*([None] * leading), DATA))


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape[DATA]


def check_batch_size(batch_size: int, mesh: Mesh, field: str) -> None:
  """Stops before compiling if the global batch cannot be split evenly."""
  devices = data_parallel_size(mesh)
  processes = jax.process_count()
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
