"""VGG19's convolutional features (Simonyan & Zisserman 2015) for SRGAN's
content loss (Ledig et al. 2017, eq. 5: the MSE between the features
phi_{i,j} of the super-resolved and the real image, phi_{i,j} the j-th
convolution (after its ReLU) before the i-th max-pooling).

Weights come from a user-supplied .npz (`load_npz`) with, for every layer up
to the one used, `convB_L/kernel` (3, 3, in, out) (HWIO) and `convB_L/bias`
(out,): e.g. torchvision's or Keras' ImageNet VGG19 converted once. Inputs
are images in `value_range`, mapped to [0, 1], repeated to 3 channels when
grey, and normalised with the ImageNet mean and std as those weights expect.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.errors import DataError

# Convolutions per block of VGG19.
BLOCKS = (2, 2, 4, 4, 4)
WIDTHS = (64, 128, 256, 512, 512)
LAYERS = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS)
               for i in range(n))
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def layers_up_to(layer: str) -> list[tuple[str, int, bool]]:
  """[(name, width, pool before it)] of the convolutions up to `layer`."""
  out = []
  for b, n in enumerate(BLOCKS):
    for i in range(n):
      name = f"conv{b + 1}_{i + 1}"
      out.append((name, WIDTHS[b], b > 0 and i == 0))
      if name == layer:
        return out
  raise ValueError(f"VGG19 layer {layer!r} is not one of {', '.join(LAYERS)}")


class VGGFeatures(nn.Module):
  """x (B, H, W, C) in value_range -> the features of `layer` after ReLU."""
  layer: str = "conv5_4"
  value_range: tuple[float, float] = (-1.0, 1.0)

  @nn.compact
  def __call__(self, x: jax.Array, cond=None, train: bool = False):
    del cond, train
    lo, hi = self.value_range
    x = (x.astype(jnp.float32) - lo) / (hi - lo)
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    h = (x - MEAN) / STD
    for name, width, pool in layers_up_to(self.layer):
      if pool:
        h = nn.max_pool(h, (2, 2), (2, 2))
      h = nn.relu(nn.Conv(width, (3, 3), name=name)(h))
    return h


def load_npz(path: str, layer: str) -> dict:
  """The params of `VGGFeatures(layer)` from `path`; DataError (one line)
  naming a missing file, a missing array or a wrong shape."""
  if not os.path.isfile(path):
    raise DataError(f"VGG19 weights {path!r}: no such file")
  try:
    arrays = np.load(path)
  except Exception as e:  # noqa: BLE001 -- reported as one line
    raise DataError(f"VGG19 weights {path!r} are not a readable .npz: "
                    f"{e}") from None
  params, c_in = {}, 3
  for name, width, _ in layers_up_to(layer):
    shapes = {"kernel": (3, 3, c_in, width), "bias": (width,)}
    params[name] = {}
    for k, shape in shapes.items():
      key = f"{name}/{k}"
      if key not in arrays:
        raise DataError(f"VGG19 weights {path!r} have no {key!r} (layers up "
                        f"to {layer} need convB_L/kernel and /bias)")
      if arrays[key].shape != shape:
        raise DataError(f"VGG19 weights {path!r}: {key} has shape "
                        f"{arrays[key].shape}, expected {shape}")
      params[name][k] = jnp.asarray(arrays[key], jnp.float32)
    c_in = width
  return params


def save_npz(path: str, params: dict) -> None:
  """Writes `VGGFeatures` params in the format `load_npz` reads."""
  np.savez(path, **{f"{name}/{k}": np.asarray(v)
                    for name, layer in params.items() for k, v in layer.items()})
