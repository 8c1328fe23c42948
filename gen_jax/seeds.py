"""Many seeds in one compiled program: `config.train.num_seeds = N`.

Run i (0 <= i < N) is the run of `config.seed + i`, the same as a separate run
with that seed: its own initial parameters, noise and evaluation samples (the
keys of seed config.seed + i), and its own data order (a separate input
stream seeded config.seed + i; one stream of N*B split N ways would not match
the single runs). The trainer's pure functions are vmapped over a leading seed
axis of the state and of the batch, shape (N, n_critic, B, ...).

Sharding: the seed axis is sharded over the mesh's `data` axis, so each device
trains N / devices whole runs and the step needs no communication (a seed's
batch is not split across devices; this is for models small enough that one
device holds a run). N must therefore be divisible by the data-axis size.
Replicating the seeds instead would make every device compute every seed.
Given the mesh, the step, `init`, `sample` and `held_out` are `shard_map`s:
each device vmaps its own seeds. Left to the SPMD partitioner, a convolution
vmapped over per-seed weights (one grouped convolution of all seeds) was not
split by seed: every device gathered and computed all N seeds (8-seed small
CycleGAN on 8 CPU devices: 6.6-7.8 s a step, against 0.3-0.5 s as a
shard_map, with no all-gather left in the step).

Metrics: every metric is reported per seed as `KEY/seed_S` (S the run's seed,
so `--config.seed=S` reproduces it alone), and over the seeds as `KEY` (mean)
and `KEY_se` (standard error of the mean, std with ddof 1 / sqrt(N)).
"""

from typing import Any

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

from gen_jax import parallel
from gen_jax.trainers.base import Wrapper


def seed_list(config) -> list[int]:
  return [config.seed + i for i in range(config.train.num_seeds)]


def keys(seeds: list[int]) -> jax.Array:
  """(N,) typed PRNG keys, key i = jax.random.key(seeds[i])."""
  return jax.vmap(jax.random.key)(np.asarray(seeds, np.uint32))


def summarize(per_seed: dict[str, Any], seeds: list[int]) -> dict[str, float]:
  """{k: (N,) values} -> mean `k`, standard error `k_se`, `k/seed_S` each.

  Values that are not per seed (scalars) pass through unchanged.
  """
  out: dict[str, float] = {}
  for k, v in per_seed.items():
    v = np.asarray(v, np.float64)
    if v.ndim == 0:
      out[k] = float(v)
      continue
    out[k] = float(np.mean(v))
    out[f"{k}_se"] = (float(np.std(v, ddof=1) / np.sqrt(len(v)))
                      if len(v) > 1 else 0.0)
    out.update({f"{k}/seed_{s}": float(x) for s, x in zip(seeds, v)})
  return out


SEEDS = P(parallel.DATA)  # the leading seed axis, over the data axis


class SeedTrainer(Wrapper):
  """A trainer's pure functions over a leading seed axis of state and batch.

  `init(keys)` takes (N,) keys (`root_key`); `sample(state, keys, n)`
  returns outputs of shape (N, n, ...); `held_out` (if the trainer has one)
  returns (N,) sums for one batch shared by all seeds. The layout methods
  shard the seed axis over the mesh's data axis and split outputs and
  metrics per seed, so the loop and the evaluators need no seed branches.
  """

  def __init__(self, trainer, seeds: list[int], mesh=None):
    """`mesh`: the run's; each device then runs its own seeds (a
    `shard_map`). Without it the functions are plain vmaps over seeds."""
    super().__init__(trainer)
    self.seeds = list(seeds)
    self.num_runs = len(self.seeds)
    self.mesh = mesh
    self.train_step = self.phase_step(0)
    if hasattr(trainer, "held_out"):  # one eval batch, shared by the seeds
      self.held_out = self._per_device(
          jax.vmap(trainer.held_out, in_axes=(0, None)), (SEEDS, P()))

  def _per_device(self, fn, in_specs):
    """`fn` (vmapped over seeds) run by each device on its own seeds: its
    outputs all have the leading seed axis. Shapes are checked (N divisible
    by the data axis) by `check_mesh`, before anything is traced. No
    collectives inside, so nothing is lost without the varying-axes type
    check (check_vma), which rejects e.g. a lazy term's `lax.cond` whose
    skipped branch returns a constant."""
    if self.mesh is None:
      return fn
    return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs,
                         out_specs=SEEDS, check_vma=False)

  def phase_step(self, phase: int):
    return self._per_device(jax.vmap(self.inner.phase_step(phase)),
                            (SEEDS, SEEDS))

  def init(self, keys: jax.Array):
    return self._per_device(jax.vmap(self.inner.init), (SEEDS,))(keys)

  def sample(self, state, keys: jax.Array, n: int, *inputs):
    """Every seed's samples; `inputs` (held-out examples, for a trainer
    that `takes_inputs`) are shared by the seeds."""
    fn = jax.vmap(lambda s, k, *i: self.inner.sample(s, k, n, *i),
                  in_axes=(0, 0) + (None,) * len(inputs))
    return self._per_device(fn, (SEEDS, SEEDS) + (P(),) * len(inputs))(
        state, keys, *inputs)

  # -- layout -------------------------------------------------------------

  def root_key(self, seed: int) -> jax.Array:
    del seed  # the seeds were given at construction
    return keys(self.seeds)

  def eval_key(self, key: jax.Array) -> jax.Array:
    return jax.vmap(self.inner.eval_key)(key)

  def check_mesh(self, config, mesh) -> None:
    parallel.check_batch_size(self.num_runs, mesh, "config.train.num_seeds")

  def state_sharding(self, mesh):
    return parallel.batch_sharding(mesh)

  def batch_sharding(self, mesh):
    return parallel.batch_sharding(mesh)  # (N, n_critic, B, ...) on N

  def sample_count(self, n: int, mesh) -> int:
    return n  # the seed axis is sharded, not a seed's samples

  def stream(self, dataset, config):
    return SeedStreams(dataset, self.seeds, config.data.batch_size,
                       jax.process_index(), jax.process_count())

  def local_batch(self, batches: list[dict]) -> dict[str, np.ndarray]:
    # (n_critic, seeds, B, ...) -> (seeds, n_critic, B, ...)
    return {k: np.swapaxes(np.stack([b[k] for b in batches]), 0, 1)
            for k in batches[0]}

  def global_batch(self, local, mesh):
    return parallel.global_batch(local, mesh, leading=0)

  def held_out_batch(self, local, mesh):
    # Every process reads whole eval batches, shared by all seeds.
    return jax.device_put(local, parallel.replicated(mesh))

  def held_out_processes(self) -> int:
    return 1

  def runs(self, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [{k: np.asarray(v)[i] for k, v in outputs.items()}
            for i in range(self.num_runs)]

  def summarize(self, per_run: list[dict[str, Any]]) -> dict[str, float]:
    names = per_run[0].keys()
    return summarize({k: np.array([m[k] for m in per_run]) for k in names},
                     self.seeds)

  def run_names(self) -> list[str]:
    return [str(s) for s in self.seeds]

  def run_state(self, state, i: int):
    return jax.tree.map(lambda a: a[i], state)

  def join_runs(self, per_run: list[np.ndarray]) -> np.ndarray:
    return np.stack(per_run)


class SeedStreams:
  """N input streams as one: each batch is (n_local_seeds, B, ...).

  Multi-process: this process feeds the seeds on its devices, a contiguous
  block (`jax.make_array_from_process_local_data` then assembles the global
  (N, ...) array).
  """

  def __init__(self, dataset, seeds: list[int], batch_size: int,
               process_index: int = 0, process_count: int = 1):
    per = len(seeds) // process_count
    self.seeds = seeds[process_index * per:(process_index + 1) * per]
    self._streams = [dataset.train_stream(seed=s, local_batch_size=batch_size,
                                          process_index=0, process_count=1)
                     for s in self.seeds]

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batches = [next(s) for s in self._streams]
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}

  def get_state(self) -> dict[str, Any]:
    return {"seeds": [s.get_state() for s in self._streams]}

  def set_state(self, state: dict[str, Any]) -> None:
    for s, st in zip(self._streams, state["seeds"]):
      s.set_state(st)
