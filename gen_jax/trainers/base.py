"""The trainer protocol: declared networks, one generic state, and the layout
every trainer shares with the loop.

A trainer is a small object of pure functions built from a config and the
dataset's `DatasetInfo`:

- `networks`: name -> `Network` (a Flax module, its optimizer or None when
  frozen, whether an EMA copy of its weights is kept, and how to initialise
  it). Nothing outside the trainer knows which names exist.
- `init(key) -> TrainState` and `train_step(state, batch) -> (state,
  metrics)`, with `batch['x']` of shape (batches_per_step, B, ...) and, when
  the dataset has labels, `batch['label']` (batches_per_step, B, ...).
- Phases (optional): `phase_starts`, the steps at which phase 1, 2, ...
  begin (SRGAN's pixel-loss pre-training then adversarial fine-tuning;
  progressive growing). Such a trainer's `train_step(state, batch, phase)`
  takes the phase as a static argument; the loop compiles one step per
  phase (`phase_step(p)`) and runs step s (counted from 0) with phase
  `phase_of(s)`, so a resume lands in the right phase by itself.
- What evaluators can ask of it (`gen_jax/evaluators/`): `sample(state, key,
  n) -> {'x': (n, ...), 'label': (n,)}` (the label only for conditional
  models), and optionally `held_out(state, batch) -> {name: sum, 'count': n}`
  for held-out metrics summed over the eval split. An image-to-image trainer
  has no prior (`has_prior = False`) and translates held-out examples
  instead (`takes_inputs = True`): `sample(state, key, n, inputs)`, with
  what its samples hold beyond 'x' listed in `sample_keys`
  (`trainers/translation.py`, `trainers/cyclegan.py`).

The non-finite guard (`nonfinite.guarded`) and many seeds
(`seeds.SeedTrainer`) wrap a trainer and return a trainer; the loop only
uses the methods of `Trainer` below.
"""

import bisect
import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from gen_jax import parallel
from gen_jax.errors import ConfigError
from gen_jax.registry import Registry


@flax.struct.dataclass
class TrainState:
  """Everything a run carries from step to step (and checkpoints).

  Every mapping is keyed by network name (`opt_state` by the names of the
  trainable networks, `ema` by the networks that keep an EMA copy). `aux`
  holds running quantities a trainer or term needs (e.g. a path-length mean,
  an augmentation probability, an image pool); {} when none.
  """
  step: jax.Array
  key: jax.Array
  params: dict[str, Any]
  model_state: dict[str, Any]   # non-param collections: batch_stats, ...
  opt_state: dict[str, Any]
  ema: dict[str, Any]
  aux: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Network:
  """One network a trainer declares.

  `example_args` are the positional arguments `module.init` is traced with
  (shapes only matter); `init_kwargs` its keyword arguments. `optimizer` None
  makes the network frozen: its parameters come from `load()` (e.g. a
  perceptual-loss network's converted weights) and are never updated. With
  `ema`, the state keeps an exponential moving average of its parameters
  (updated by `updates.with_ema`).
  """
  module: nn.Module
  example_args: tuple
  optimizer: optax.GradientTransformation | None
  init_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  ema: bool = False
  load: Callable[[], Any] | None = None


def split_variables(variables) -> tuple[Any, dict[str, Any]]:
  """Flax variables -> (params, the other collections)."""
  variables = dict(variables)
  return variables.pop("params", {}), variables


def init_state(networks: Mapping[str, Network], key: jax.Array,
               aux: dict[str, Any] | None = None) -> TrainState:
  """Initial parameters, optimizer states and EMA copies of `networks`.

  `key` is split into the state's key and one key per network, in
  declaration order.
  """
  key, *keys = jax.random.split(key, len(networks) + 1)
  params, model_state, opt_state, ema = {}, {}, {}, {}
  for (name, net), k in zip(networks.items(), keys):
    p, s = split_variables(net.module.init(k, *net.example_args,
                                           **net.init_kwargs))
    if net.load is not None:
      p = net.load()
    params[name], model_state[name] = p, s
    if net.optimizer is not None:
      opt_state[name] = net.optimizer.init(p)
    if net.ema:
      ema[name] = p
  return TrainState(step=jnp.zeros((), jnp.int32), key=key, params=params,
                    model_state=model_state, opt_state=opt_state, ema=ema,
                    aux=dict(aux or {}))


def apply_gradients(net: Network, state: TrainState, name: str,
                    grads) -> TrainState:
  """One optimizer update of network `name`."""
  updates, opt = net.optimizer.update(grads, state.opt_state[name],
                                      state.params[name])
  return state.replace(
      params={**state.params, name: optax.apply_updates(state.params[name],
                                                        updates)},
      opt_state={**state.opt_state, name: opt})


class Trainer:
  """Base of every trainer: the single-run layout the loop relies on.

  Subclasses set `networks`, `info`, `batches_per_step` and implement
  `init`, `train_step` and `sample` (and `held_out` if they have held-out
  metrics). `SeedTrainer` overrides the layout methods for N runs at once.
  """

  networks: Mapping[str, Network]
  batches_per_step: int = 1
  conditional: bool = False
  num_runs: int = 1
  has_prior: bool = True      # `sample(state, key, n)` draws from a prior
  takes_inputs: bool = False  # `sample(state, key, n, inputs)` translates
  sample_keys: tuple[str, ...] = ()  # what samples hold beyond x, label
  # Steps at which phase 1, 2, ... begin (increasing); () = one phase.
  phase_starts: tuple[int, ...] = ()

  @property
  def num_phases(self) -> int:
    return len(self.phase_starts) + 1

  def phase_of(self, step: int) -> int:
    """The phase of step `step` (0-based: the step that starts there)."""
    return bisect.bisect_right(self.phase_starts, step)

  def phase_step(self, phase: int):
    """`(state, batch) -> (state, metrics)` of one phase: `train_step`
    with the phase bound (a trainer with one phase: `train_step` itself)."""
    if not self.phase_starts:
      return self.train_step
    return functools.partial(self.train_step, phase=phase)

  def root_key(self, seed: int) -> jax.Array:
    return jax.random.key(seed)

  def eval_key(self, key: jax.Array) -> jax.Array:
    """The key evaluation samples are drawn with (the same at every
    evaluation, so that metrics over steps compare like with like)."""
    return jax.random.fold_in(key, 2**31 - 1)

  def check_mesh(self, config, mesh: Mesh) -> None:
    parallel.check_batch_size(config.data.batch_size, mesh,
                              "config.data.batch_size")

  def state_sharding(self, mesh: Mesh):
    return parallel.replicated(mesh)

  def batch_sharding(self, mesh: Mesh):
    """Batches (batches_per_step, B, ...) are sharded on B."""
    return parallel.batch_sharding(mesh, 1)

  def sample_count(self, n: int, mesh: Mesh) -> int:
    """n rounded up so that the sample batch splits over the data axis."""
    d = parallel.data_parallel_size(mesh)
    return -(-n // d) * d

  def stream(self, dataset, config):
    return dataset.train_stream(
        seed=config.seed,
        local_batch_size=config.data.batch_size // jax.process_count(),
        process_index=jax.process_index(), process_count=jax.process_count())

  def local_batch(self, batches: list[dict]) -> dict[str, np.ndarray]:
    """`batches_per_step` process-local batches -> one step's batch."""
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}

  def global_batch(self, local: dict[str, np.ndarray], mesh: Mesh):
    return parallel.global_batch(local, mesh, leading=1)

  def held_out_batch(self, local: dict[str, np.ndarray], mesh: Mesh):
    """An eval batch (B, ...) as the held-out function's global input."""
    return parallel.global_batch(local, mesh)

  def held_out_processes(self) -> int:
    return jax.process_count()

  def runs(self, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Host outputs (samples) -> one entry per run."""
    return [outputs]

  def summarize(self, per_run: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of each run -> the metrics the loop logs."""
    return dict(per_run[0])

  def join_runs(self, per_run: list[np.ndarray]) -> np.ndarray:
    """One array of each run -> the array saved for all runs."""
    return per_run[0]

  def run_names(self) -> list[str]:
    return [""]

  def run_state(self, state: TrainState, i: int) -> TrainState:
    """Run i's state, as the trainer's own functions take it."""
    del i
    return state


@dataclasses.dataclass(frozen=True)
class TrainerSpec:
  """What the config system needs of a trainer family: its class, its config
  defaults (`defaults(config)` adds the trainer's own groups to a base
  config), validation (`validate(config)` raises ConfigError) and `small`
  (shrinks its own fields for tests)."""
  create: Callable[..., Trainer]
  defaults: Callable[[Any], None]
  validate: Callable[[Any], None]
  small: Callable[[Any], None]
  # Checks that need the dataset's DatasetInfo (e.g. labels for a
  # conditional model), run before anything is compiled.
  validate_data: Callable[[Any, Any], None] = lambda config, info: None
  # arch -> the default `config.model` for that architecture, for trainers
  # with a choice of them (workdir.py: fields added since a run started).
  model_config: Callable[[str], Any] | None = None


TRAINERS: Registry[TrainerSpec] = Registry("config.trainer")


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """An architecture a trainer can build: `defaults()` returns its own
  sub-config (`config.model.<name>`), `validate(config)` checks it, `small`
  shrinks it, and `build(config, info)` returns its modules."""
  defaults: Callable[[], Any]
  build: Callable[..., Any]
  validate: Callable[[Any], None] = lambda config: None
  small: Callable[[Any], None] = lambda sub: None
  conditional: bool = False  # can take class labels
  # Its critic's gradients stay fast inside a `lax.scan` on XLA:CPU (every
  # convolution is a conv2x layer or none: see BENCHMARKS.md), so its n_critic
  # updates may be one loop body (`config.gan.critic_loop='scan'`).
  loop_safe: bool = False
  # Progressive growing (models/progressive.py): image size -> the
  # resolutions of the networks' levels; None: the architecture cannot grow.
  levels: Callable[[int], tuple[int, ...]] | None = None


def check_arch(config, archs: Registry[ArchSpec]) -> ArchSpec:
  """The spec of `config.model.arch`, after checking that config.model holds
  that architecture's sub-config and no other architecture's, and the
  architecture's own validation."""
  m = config.model
  spec = archs.get(m.arch)
  if m.arch not in m:
    raise ConfigError(f"config.model.{m.arch} is missing: config.model.arch="
                      f"{m.arch!r} reads it (build config.model with the "
                      f"trainer's model_config({m.arch!r}))")
  others = [a for a in archs if a != m.arch and a in m]
  if others:
    raise ConfigError(f"config.model.{others[0]} is set but config.model.arch"
                      f"={m.arch!r}: a config holds only its architecture's "
                      "fields")
  spec.validate(config)
  return spec


class Wrapper:
  """A trainer around another: every attribute not defined by the wrapper is
  the inner trainer's (so `hasattr(w, 'held_out')` is the inner's answer)."""

  def __init__(self, inner):
    self.inner = inner

  def __getattr__(self, name: str):
    return getattr(self.inner, name)
