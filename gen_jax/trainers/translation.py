"""What the paired image-to-image trainers (Pix2Pix, SRGAN) share: the
dataset check, the evaluation side (`sample` of held-out sources for the
picture, `held_out` for the metrics) and the critic's update on outputs (or
(output, source) pairs).

Batches (`data/base.py`): `x` the target image (1, B, H, W, C), `cond` the
source image (1, B, h, w, c). Such a trainer has no prior to sample from
(`has_prior = False`); its samples are translations of held-out examples
(`takes_inputs = True`, as CycleGAN's): `sample(state, key, n, inputs)`
returns {'x': outputs, 'cond': the sources, 'target': the targets}, which
`evaluators/translation.py` draws, and its held-out sums, per example averaged
over the split: `l1`, `psnr`, `ssim` of the output against the target,
`sharpness` (mean gradient magnitude, `metrics/pixels.py`) and
`sharpness_ratio` (output's / target's), and with a smaller source the same
for its bicubic upsampling (`bicubic_*`), the baseline.
"""

import jax
import jax.numpy as jnp

from gen_jax import objectives, schedules
from gen_jax.data.base import DatasetInfo
from gen_jax.errors import ConfigError
from gen_jax.metrics import pixels
from gen_jax.trainers import base
from gen_jax.trainers.base import Network, TrainState

G, D = "generator", "discriminator"


def check_paired(config, info: DatasetInfo) -> None:
  """ConfigError unless the dataset is paired image-to-image data."""
  if "cond_shape" not in info.extras:
    raise ConfigError(
        f"config.trainer={config.trainer!r} needs an image-to-image dataset "
        f"(batches with a source image 'cond'); {info.name!r} is not one "
        "(e.g. digit_edges, digit_thicken, digit_superres, folder_pairs:PATH)")
  if not info.extras["paired"]:
    raise ConfigError(
        f"config.trainer={config.trainer!r} needs paired data (each source "
        f"with its target); {info.name!r} is unpaired (use cyclegan)")


def generator_and_critic(config, info: DatasetInfo, generator, critic,
                         conditional_critic: bool) -> dict[str, Network]:
  """{G: the generator on sources, D: the critic on targets (with their
  sources when `conditional_critic`)}, each with its Adam of
  `config.optim` (g_* and d_* fields, `decay` over the run)."""
  o, steps = config.optim, config.train.num_steps
  source = jnp.zeros((2, *info.extras["cond_shape"]), jnp.float32)
  x = jnp.zeros((2, *info.example_shape), jnp.float32)
  return {
      G: Network(generator, (source,),
                 schedules.adam(o.g_lr, o.g_b1, o.g_b2, o.decay, steps),
                 {"train": False}),
      D: Network(critic, (x, source) if conditional_critic else (x,),
                 schedules.adam(o.d_lr, o.d_b1, o.d_b2, o.decay, steps),
                 {"train": False}),
  }


def image_metrics(out: jax.Array, target: jax.Array,
                  value_range) -> dict[str, jax.Array]:
  """(B,) l1, psnr, ssim, sharpness and sharpness_ratio of `out`."""
  r = float(value_range[1] - value_range[0])
  sharp = pixels.sharpness(out, r)
  return {"l1": pixels.l1(out, target), "psnr": pixels.psnr(out, target, r),
          "ssim": pixels.ssim(out, target, r), "sharpness": sharp,
          "sharpness_ratio": sharp / jnp.maximum(
              pixels.sharpness(target, r), 1e-6)}


class TranslationTrainer(base.Trainer):
  """Base of the paired image-to-image trainers: subclasses set `info`,
  `networks` (with `G` and `D`) and `d_terms` (the critic's objective
  terms) and implement `generate` and `train_step`."""

  has_prior = False  # no samples without a source: see `sample`
  takes_inputs = True  # `sample` translates held-out examples
  sample_keys = ("cond", "target")
  d_terms: list  # the terms tagged `D`, those of the adversarial phase

  def generate(self, params, g_state, cond, key, train: bool):
    """G(cond) -> (output, new generator state)."""
    raise NotImplementedError

  def critic(self, params, d_state, x, cond=None):
    """D(x) or, for a conditional critic (Pix2Pix's PatchGAN judges
    (output, source) pairs), D(x, cond), in training mode -> (logits, new
    critic state)."""
    args = (x,) if cond is None else (x, cond)
    return self.networks[D].module.apply(
        {"params": params, **d_state}, *args, train=True,
        mutable=list(d_state))

  def d_objective(self, params, d_state, real, fake, step, cond=None):
    """The critic's terms on real and fake images (of the sources `cond`
    for a conditional critic) -> (objective, (new critic state, metrics
    with the mean logits d_real, d_fake))."""
    real_logits, d_state = self.critic(params, d_state, real, cond)
    fake_logits, d_state = self.critic(params, d_state, fake, cond)
    total, metrics = objectives.objective(
        self.d_terms, D, {"real_logits": real_logits,
                          "fake_logits": fake_logits}, step)
    metrics["d_real"] = jnp.mean(real_logits)
    metrics["d_fake"] = jnp.mean(fake_logits)
    return total, (d_state, metrics)

  def translate(self, state: TrainState, cond: jax.Array,
                key: jax.Array) -> jax.Array:
    """Outputs for sources `cond` (n, h, w, c), the generator in eval mode."""
    x, _ = self.generate(state.params[G], state.model_state[G], cond, key,
                         train=False)
    return x

  def sample(self, state: TrainState, key: jax.Array, n: int,
             inputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Translations of n held-out examples `inputs` {'cond': sources, 'x':
    targets}: {'x': outputs, 'cond': sources, 'target': targets}."""
    cond = inputs["cond"][:n]
    return {"x": self.translate(state, cond, key), "cond": cond,
            "target": inputs["x"][:n]}

  def held_out(self, state: TrainState, batch) -> dict[str, jax.Array]:
    """Sums over the batch's real rows of the module docstring's metrics."""
    key = jax.random.key(4321)  # the same outputs at every evaluation
    out = self.translate(state, batch["cond"], key)
    mask = batch["mask"]
    metrics = image_metrics(out, batch["x"], self.info.value_range)
    if batch["cond"].shape[1:3] != batch["x"].shape[1:3]:
      up = pixels.bicubic(batch["cond"], batch["x"].shape[1:3])
      lo, hi = self.info.value_range
      up = jnp.clip(up, lo, hi)
      metrics.update({f"bicubic_{k}": v for k, v in image_metrics(
          up, batch["x"], self.info.value_range).items()})
    sums = {k: jnp.sum(v * mask) for k, v in metrics.items()}
    sums["count"] = jnp.sum(mask)
    return sums
