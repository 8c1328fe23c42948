"""VGG19's convolutional features (Simonyan & Zisserman 2015) for SRGAN's
content loss (Ledig et al. 2017, eq. 5: the MSE between the features
phi_{i,j} of the super-resolved and the real image, phi_{i,j} the j-th
convolution (after its ReLU) before the i-th max-pooling).

Weights come from a user-supplied .npz (`load_npz`) with, for every layer up
to the one used, `convB_L/kernel` (3, 3, in, out) (HWIO) and `convB_L/bias`
(out,). torchvision's ImageNet VGG19 (`vgg19-dcbb9e9d.pth`, its state dict)
converts once, where torch is installed, with

  python -m gen_jax.models.vgg convert vgg19-dcbb9e9d.pth vgg19.npz

(`from_torchvision`: its `features.N.weight` (out, in, 3, 3) -> HWIO). Inputs
are images in `value_range`, mapped to [0, 1], repeated to 3 channels when
grey, and normalised with the ImageNet mean and std as those weights expect.
"""

import os
import sys

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


# The indices of the 16 convolutions in torchvision's `vgg19().features`.
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32,
                     34)


def from_torchvision(state: dict) -> dict[str, np.ndarray]:
  """The .npz arrays (`load_npz`'s keys) of torchvision's VGG19 state dict
  (numpy arrays); ValueError naming a missing or misshapen entry."""
  out = {}
  for name, index in zip(LAYERS, TORCHVISION_CONVS):
    w, b = (state.get(f"features.{index}.{k}") for k in ("weight", "bias"))
    if w is None or b is None:
      raise ValueError(f"no features.{index}.weight/bias (VGG19's {name}); "
                       "is this torchvision's vgg19 state dict?")
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[2:] != (3, 3):
      raise ValueError(f"features.{index}.weight has shape {w.shape}, "
                       "expected (out, in, 3, 3)")
    out[f"{name}/kernel"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
    out[f"{name}/bias"] = np.asarray(b)
  return out


def convert(pth: str, npz: str) -> None:
  """torchvision's VGG19 .pth -> the .npz `load_npz` reads (needs torch)."""
  from gen_jax.metrics.inception import read_pth
  try:
    arrays = from_torchvision(read_pth(pth))
  except ValueError as e:
    raise DataError(f"VGG19 weights {pth}: {e}") from None
  tmp = npz + ".tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, npz)


def main(argv: list[str]) -> int:
  if len(argv) != 4 or argv[1] != "convert":
    print("usage: python -m gen_jax.models.vgg convert IN.pth OUT.npz",
          file=sys.stderr)
    return 2
  try:
    convert(argv[2], argv[3])
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {argv[3]}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
