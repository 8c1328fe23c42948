"""Progressive growing (Karras et al. 2018, "Progressive Growing of GANs"):
the schedule of resolution phases and the resampling the networks share.

A growable network has *levels*: level k works at resolution `levels[k]`
(each twice the one before; the last is the full image size). Training
starts at a level below the top and grows one level at a time; each new level
first *fades in* over `phase_steps` steps and is then trained alone (*stable*)
for `phase_steps` more:

  phase 0: stable at start level; phase 1: fade in start + 1;
  phase 2: stable at start + 1; ...; last phase: stable at the top level,
  until the end of training.

During a fade the new level's output is mixed with the previous level's,
upsampled: `lerp(upsample(old), new, alpha)`, alpha rising linearly from 0
to 1 over the phase (section 3 and figure 2 of the paper); the critic mirrors
it on its input side. A phase is one compiled program (its level is static);
alpha is data, computed from the step inside the program, so a fade costs no
recompilation.

The hook every growable architecture implements (models/dcgan.py,
models/resnet.py, models/stylegan2.py; StyleGAN2's skip generator already
has a toRGB per resolution and fades in the skip sum at level k):

- the generator `__call__(z, cond, train, level=None, alpha=None)` returns
  images at `levels[level]` px (None: the top level); `alpha` None: stable,
  else a scalar array: the fade into `level`;
- the critic `__call__(x, cond, train, per_example, level=None,
  alpha=None)` takes images at `levels[level]` px, the same way;
- every parameter of every level is created at initialisation (`init` at
  the top level creates the other levels' toRGB / fromRGB heads too), so the
  parameter tree is the same in every phase and a checkpoint of one phase
  restores into any other;
- `ArchSpec.levels(image_size)` (trainers/base.py) lists the resolutions.
"""

import dataclasses

import jax
import jax.numpy as jnp
import flax.linen as nn


def lerp(old: jax.Array, new: jax.Array, alpha) -> jax.Array:
  """(1 - alpha) old + alpha new: exactly `old` at alpha 0 and exactly `new`
  at alpha 1 (for finite values)."""
  alpha = jnp.asarray(alpha, new.dtype)
  return (1 - alpha) * old.astype(new.dtype) + alpha * new


def upsample(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling of (B, H, W, C) by `factor`."""
  if factor == 1:
    return x
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def downsample(x: jax.Array, factor: int = 2) -> jax.Array:
  """Average pooling of (B, H, W, C) by `factor` (ProGAN's real images)."""
  if factor == 1:
    return x
  return nn.avg_pool(x, (factor, factor), (factor, factor))


def resize(x: jax.Array, resolution: int) -> jax.Array:
  """(B, H, H, C) -> (B, resolution, resolution, C) by average pooling or
  nearest upsampling (powers of two)."""
  h = x.shape[1]
  if resolution <= h:
    return downsample(x, h // resolution)
  return upsample(x, resolution // h)


def real_at(x: jax.Array, resolution: int, alpha=None) -> jax.Array:
  """Real images (B, H, H, C) as the critic sees them in a phase at
  `resolution`: average-pooled to it, and during a fade (`alpha` not None)
  mixed with the previous level's version, upsampled, as the generator's
  output is (ProGAN's released code)."""
  x = resize(x, resolution)
  if alpha is None:
    return x
  return lerp(upsample(downsample(x)), x, alpha)


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Phases of progressive growing over `levels` (resolutions), from
  `levels[start]`, each of `phase_steps` steps except the last."""
  levels: tuple[int, ...]
  start: int
  phase_steps: int

  @property
  def phases(self) -> tuple[tuple[int, bool], ...]:
    """(level, fading) of each phase."""
    out = [(self.start, False)]
    for level in range(self.start + 1, len(self.levels)):
      out += [(level, True), (level, False)]
    return tuple(out)

  @property
  def phase_starts(self) -> tuple[int, ...]:
    """The steps at which phases 1, 2, ... begin."""
    return tuple(self.phase_steps * i for i in range(1, len(self.phases)))

  def alpha(self, step, phase: int):
    """The fade-in weight of phase `phase` at `step` (an array inside a
    compiled step): (step - start of phase) / phase_steps while fading (0 at
    the phase's first step), None in a stable phase (the new level alone)."""
    if not self.phases[phase][1]:
      return None
    start = self.phase_steps * phase
    return (jnp.asarray(step, jnp.float32) - start) / self.phase_steps
