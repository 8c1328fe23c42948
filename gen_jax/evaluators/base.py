"""What an evaluator is, and the registry `config.evals` picks from.

An evaluator is a function of what a trainer can produce, never of its
state: `fn(ctx, runs) -> (per-run metrics, pictures)`, where `runs` holds one
entry per run (one, or one per seed with `train.num_seeds`): the samples
`{'x', 'label'?}` (and a translator's `sample_keys`) for evaluators that
need 'samples', the held-out means for those that need 'held_out', and a
`Codec` for those that need 'codec'.
`applies(ctx)` says whether it can run at all here; `default(ctx)` (default:
`applies`) whether it belongs to the 'default' set. `prepare(ctx)`, if
given, runs once when the evaluation is built (before compiling): load what
the evaluator needs, fail early on a bad file, keep it in `ctx.cache`.
"""

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from gen_jax.data.base import DatasetInfo
from gen_jax.registry import Registry


@dataclasses.dataclass
class Codec:
  """One run's encoder and decoder, for latent-space evaluators (numpy in,
  numpy out; jitted once per run by `Evaluation`). A trainer offers them by
  defining `encode(state, x)`, `decode(state, z)`, `corrupt(x, key)` and,
  with a stochastic encoder, `log_weights(state, x, key, k)`.

  encode: x (n, ...) -> {'mean': (n, D), 'log_sigma': (n, D) if stochastic}
  decode: z (n, D) -> x (n, ...), the means of p(x|z) in the data's range
  corrupt: x -> corrupted x (a fixed draw), or None without a corruption
  log_weights: (x (n, ...), key, k) -> (n, k) log p(x, z_i) - log q(z_i|x),
    or None for a deterministic encoder
  settings: the trainer's `codec_settings` (e.g. nll_k, nll_chunk)
  """
  encode: Callable[[np.ndarray], dict[str, np.ndarray]]
  decode: Callable[[np.ndarray], np.ndarray]
  corrupt: Callable[[np.ndarray], np.ndarray] | None
  log_weights: Callable[[np.ndarray, Any, int], np.ndarray] | None
  settings: dict[str, Any]


@dataclasses.dataclass
class Context:
  """What evaluators may read: static facts of the run, the held-out
  reference examples, the step, and the metrics earlier evaluators gave.

  `draw(n)` (set at each evaluation, for evaluators that need 'samples')
  yields chunks of samples, one list of per-run `{'x', 'label'?}` per chunk,
  `n` per run in all: the evaluation's own samples first, then fresh draws
  (fixed keys, the same at every evaluation), so an evaluator may score
  more samples than `train.num_eval_samples` without holding them all.
  """
  info: DatasetInfo
  conditional: bool
  num_classes: int
  has_held_out: bool
  run_names: list[str]
  reference: Callable[[], dict[str, np.ndarray]]  # held-out {'x', 'label'?}
  config: Any = None   # the run's config (read-only)
  mesh: Any = None     # the device mesh (to shard an evaluator's network)
  dataset: Any = None  # the run's dataset (`base.Dataset`)
  # The whole held-out split {'x', 'label'?} (the held-out likelihood).
  split: Callable[[], dict[str, np.ndarray]] | None = None
  has_prior: bool = True    # samples can be drawn (not a plain autoencoder)
  has_codec: bool = False   # the trainer offers encode/decode (a Codec)
  stochastic: bool = False  # ... with a Gaussian encoder (log_weights)
  # Samples are translations of held-out examples (an image-to-image
  # trainer's `sample(state, key, n, inputs)`): they exist without a prior.
  takes_inputs: bool = False
  # What a sample holds beyond 'x' and 'label' (the trainer's
  # `sample_keys`; a cycle translator: its sources, cycles, ...).
  sample_keys: tuple[str, ...] = ()
  step: int = 0
  final: bool = False       # the evaluation after the last step
  metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  draw: Callable[[int], Iterator[list[dict[str, np.ndarray]]]] | None = None
  cache: dict[str, Any] = dataclasses.field(default_factory=dict)  # per run

  @property
  def is_image(self) -> bool:
    return self.info.kind == "image"

  def classifier(self):
    """The dataset's digit classifier (cached), or None."""
    name = self.info.extras.get("classifier")
    if name is None or not self.is_image:
      return None
    from gen_jax import metrics
    return metrics.get_classifier(name, self.info.example_shape[0],
                                  data_dir=self.info.extras.get("data_dir"))


Runs = list[dict[str, np.ndarray]]
Result = tuple[list[dict[str, float]], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Evaluator:
  needs: str  # 'samples', 'held_out' or 'codec'
  applies: Callable[[Context], bool]
  fn: Callable[[Context, Runs], Result]
  picture: bool = False  # runs last: its picture may show the others' numbers
  default: Callable[[Context], bool] | None = None  # None: `applies`
  prepare: Callable[[Context], None] | None = None

  def in_default(self, ctx: Context) -> bool:
    return (self.default or self.applies)(ctx)


EVALUATORS: Registry[Evaluator] = Registry("config.evals")


def register(name: str, needs: str, applies: Callable[[Context], bool],
             picture: bool = False,
             default: Callable[[Context], bool] | None = None,
             prepare: Callable[[Context], None] | None = None):
  def add(fn):
    EVALUATORS.add(name, Evaluator(needs, applies, fn, picture, default,
                                   prepare))
    return fn
  return add


def per_run(metric: Callable[[Context, dict], dict[str, float]]):
  """An evaluator function from a metric of one run's outputs."""
  def fn(ctx: Context, runs: Runs) -> Result:
    return [metric(ctx, r) for r in runs], {}
  return fn
