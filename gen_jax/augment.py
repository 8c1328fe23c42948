"""Differentiable augmentation of everything the discriminator sees, and
ADA's adaptive augmentation probability.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training", and their DiffAugment_pytorch.py): the same
random transforms are applied to real and fake images, in the critic's
update and in the generator's, and every transform is differentiable with
respect to the image, so the generator learns through them. The policy is
`config.gan.augment`, a comma-separated list of families:

- `color`: brightness x + (u - 0.5), saturation (x - mean_c) * 2u + mean_c,
  contrast (x - mean_chw) * (u + 0.5) + mean_chw (u ~ U[0, 1) per example);
- `translation`: an integer shift of up to 1/8 of the size on each axis,
  zero-filled;
- `cutout`: a zeroed square of half the size at a uniform centre (clipped at
  the border).

Each transform's parameters are drawn independently per example. With
probability p < 1 each transform is applied to each example with
probability p (ADA's per-transform skipping; DiffAugment is p = 1).

ADA (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data", section 3): p starts at 0 (`config.gan.augment_p`) and
every `interval` steps moves by sign(r_t - target) * (images seen in the
interval) / (kimg * 1000), where r_t = E[sign(D(real))] over the
interval's real batches; r_t above the target (0.6) means the critic is
overfitting. Here ADA's p drives the DiffAugment transforms above, not
ADA's own 18-transform pipeline. p and the running sums live in
`TrainState.aux` (`ADA_KEYS`), so they are checkpointed and a resume goes
on from them.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen_jax.registry import Registry

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


# -- the transforms, with their random parameters explicit --------------------

def brightness(x: jax.Array, u: jax.Array) -> jax.Array:
  """x (B, H, W, C) + (u - 0.5), u (B,)."""
  return x + (u - 0.5)[:, None, None, None].astype(x.dtype)


def saturation(x: jax.Array, u: jax.Array) -> jax.Array:
  """(x - channel mean) * 2u + channel mean, per pixel."""
  mean = jnp.mean(x, axis=3, keepdims=True)
  return (x - mean) * (2.0 * u)[:, None, None, None].astype(x.dtype) + mean


def contrast(x: jax.Array, u: jax.Array) -> jax.Array:
  """(x - image mean) * (u + 0.5) + image mean."""
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (u + 0.5)[:, None, None, None].astype(x.dtype) + mean


def translate(x: jax.Array, shifts: jax.Array) -> jax.Array:
  """out[b, i, j] = x[b, i + shifts[b, 0], j + shifts[b, 1]], 0 outside the
  image. shifts (B, 2) integers of magnitude at most H, W."""
  _, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (h, h), (w, w), (0, 0)))

  def one(img, s):
    return jax.lax.dynamic_slice(img, (h + s[0], w + s[1], 0),
                                 (h, w, img.shape[-1]))

  return jax.vmap(one)(padded, shifts.astype(jnp.int32))


def cutout_mask(centres: jax.Array, size: int, h: int, w: int) -> jax.Array:
  """(B, H, W, 1) mask: 0 on the size x size square whose top-left corner is
  centre - size // 2 (clipped to the image), 1 elsewhere. centres (B, 2)."""
  lo = centres - size // 2                                   # (B, 2)
  rows = jnp.arange(h)[None, :]
  cols = jnp.arange(w)[None, :]
  in_r = (rows >= lo[:, :1]) & (rows < lo[:, :1] + size)     # (B, H)
  in_c = (cols >= lo[:, 1:]) & (cols < lo[:, 1:] + size)     # (B, W)
  return 1.0 - (in_r[:, :, None] & in_c[:, None, :])[..., None]


def cutout_size(h: int) -> int:
  return int(h * CUTOUT_RATIO + 0.5)


def cutout(x: jax.Array, centres: jax.Array) -> jax.Array:
  _, h, w, _ = x.shape
  return x * cutout_mask(centres, cutout_size(h), h, w).astype(x.dtype)


# -- the families, each drawing its own parameters ----------------------------

# name -> [(transform, draw(key, x) -> parameters)]: one entry per transform
# that is applied (or skipped) on its own.
AUGMENTS: Registry[list[tuple[Callable, Callable]]] = Registry(
    "config.gan.augment")


def _uniform(key, x):
  return jax.random.uniform(key, (x.shape[0],), jnp.float32)


def _shifts(key, x):
  _, h, w, _ = x.shape
  limit = jnp.array([int(h * TRANSLATION_RATIO + 0.5),
                     int(w * TRANSLATION_RATIO + 0.5)])
  return jax.random.randint(key, (x.shape[0], 2), -limit, limit + 1)


def _centres(key, x):
  _, h, w, _ = x.shape
  size = cutout_size(h)
  # DiffAugment's offsets: 0 .. size + (1 - size % 2) - 1 beyond H - size.
  high = jnp.array([h + (1 - size % 2), w + (1 - cutout_size(w) % 2)])
  return jax.random.randint(key, (x.shape[0], 2), 0, high)


AUGMENTS.add("color", [(brightness, _uniform), (saturation, _uniform),
                       (contrast, _uniform)])
AUGMENTS.add("translation", [(translate, _shifts)])
AUGMENTS.add("cutout", [(cutout, _centres)])


def parse_policy(policy: str) -> tuple[str, ...]:
  """'color,translation' -> ('color', 'translation'); '' -> (). Raises
  ConfigError for an unknown family."""
  names = tuple(t.strip() for t in policy.split(",") if t.strip())
  for name in names:
    AUGMENTS.get(name)
  return names


def augment(x: jax.Array, key: jax.Array, policy: tuple[str, ...],
            p: jax.Array | float = 1.0) -> jax.Array:
  """x (B, H, W, C) with the policy's transforms, in order; each applied to
  each example with probability p (every one when p is 1). Differentiable
  with respect to x. Two batches with the same key get the same parameters
  (the k-th example of each the same shift, crop, colour change)."""
  transforms = [t for name in policy for t in AUGMENTS.get(name)]
  keys = jax.random.split(key, 2 * max(len(transforms), 1))
  p = jnp.asarray(p, jnp.float32)
  for i, (fn, draw) in enumerate(transforms):
    y = fn(x, draw(keys[2 * i], x))
    apply = jax.random.uniform(keys[2 * i + 1], (x.shape[0],)) < p
    x = jnp.where(apply[:, None, None, None], y, x)
  return x


# -- ADA's p -----------------------------------------------------------------

ADA_KEYS = ("ada_p", "ada_sign_sum", "ada_count")


def ada_init(p: float = 0.0) -> dict[str, jax.Array]:
  """ADA's state: p (starting at `p`; ADA: 0) and the interval's sums."""
  aux = {k: jnp.zeros((), jnp.float32) for k in ADA_KEYS}
  aux["ada_p"] = jnp.asarray(p, jnp.float32)
  return aux


def ada_accumulate(aux: dict, sign_mean: jax.Array, count: int) -> dict:
  """Adds a real batch of `count` examples, with mean sign(D(real))
  `sign_mean`, to the interval's sums."""
  return {**aux, "ada_sign_sum": aux["ada_sign_sum"] + sign_mean * count,
          "ada_count": aux["ada_count"] + count}


def ada_update(aux: dict, step: jax.Array, interval: int, target: float,
               images_per_step: int, kimg: float) -> dict:
  """At the end of step `step` (0-based): every `interval` steps, p moves
  by sign(r_t - target) * interval * images_per_step / (kimg * 1000) within
  [0, 1], and the sums restart."""
  due = (step + 1) % interval == 0
  r_t = aux["ada_sign_sum"] / jnp.maximum(aux["ada_count"], 1.0)
  adjust = jnp.sign(r_t - target) * (interval * images_per_step
                                     / (kimg * 1000.0))
  p = jnp.clip(aux["ada_p"] + adjust, 0.0, 1.0)
  zero = jnp.zeros((), jnp.float32)
  return {**aux,
          "ada_p": jnp.where(due, p, aux["ada_p"]),
          "ada_sign_sum": jnp.where(due, zero, aux["ada_sign_sum"]),
          "ada_count": jnp.where(due, zero, aux["ada_count"])}


def ada_rt(aux: dict) -> jax.Array:
  """r_t of the interval so far (0 before any batch)."""
  return aux["ada_sign_sum"] / jnp.maximum(aux["ada_count"], 1.0)
