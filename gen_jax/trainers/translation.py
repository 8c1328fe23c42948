"""What the image-to-image trainers (Pix2Pix, SRGAN) share: the dataset
check, the evaluation side (`translate` for the picture, `held_out` for the
metrics) and the critic's update on (output, source) pairs.

Batches (`data/base.py`): `x` the target image (1, B, H, W, C), `cond` the
source image (1, B, h, w, c). Such a trainer has no prior to sample from
(`has_prior = False`): evaluators get its translations of held-out sources
(`evaluators/translation.py`) and its held-out sums, per example averaged
over the split: `l1`, `psnr`, `ssim` of the output against the target,
`sharpness` (mean gradient magnitude, `metrics/pixels.py`) and
`sharpness_ratio` (output's / target's), and with a smaller source the same
for its bicubic upsampling (`bicubic_*`), the baseline.
"""

import jax
import jax.numpy as jnp

from gen_jax.data.base import DatasetInfo
from gen_jax.errors import ConfigError
from gen_jax.metrics import pixels
from gen_jax.trainers import base
from gen_jax.trainers.base import TrainState

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
  `networks` (with `G`) and implement `generate` and `train_step`."""

  has_prior = False  # no samples without a source: see `translate`

  def generate(self, params, g_state, cond, key, train: bool):
    """G(cond) -> (output, new generator state)."""
    raise NotImplementedError

  def translate(self, state: TrainState, cond: jax.Array,
                key: jax.Array) -> jax.Array:
    """Outputs for sources `cond` (n, h, w, c), the generator in eval mode."""
    x, _ = self.generate(state.params[G], state.model_state[G], cond, key,
                         train=False)
    return x

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
