"""The FID Inception-v3 (pytorch-fid / TTUR) in Flax Linen, NHWC.

The network of Heusel et al. 2017's FID as pytorch-fid's `InceptionV3`
(`use_fid_inception=True`) builds it: torchvision's Inception-v3 with the
TensorFlow graph's quirks, which change the features:

- average pools inside the blocks ignore the zero padding
  (`count_include_pad=False`: FIDInceptionA, C, E_1);
- the last block (FIDInceptionE_2, `Mixed_7c`) max-pools its pool branch;
- every conv is bias-free, followed by batch norm with eps = 1e-3 and ReLU;
- input: images in [0, 1], resized bilinearly to 299 x 299 with half-pixel
  centres and no antialiasing (`F.interpolate(..., mode='bilinear',
  align_corners=False)`), then mapped to [-1, 1] by 2x - 1.

Outputs: `pool` (N, 2048), the final average pool (FID, KID, PR, DC), and
the 1008-way head of the TF graph (`fc`): `logits_unbiased` = pool @ W, as
OpenAI's Inception Score code and torch-fidelity compute it, and `logits`
= pool @ W + b.

Parameter names mirror pytorch-fid's state dict (`Mixed_5b.branch1x1.conv`),
so `variables_from_state_dict` is a mechanical mapping: OIHW conv weights to
HWIO kernels, (out, in) linear weights to (in, out), batch-norm
weight/bias/running_mean/running_var to scale/bias and `batch_stats`
mean/var.
"""

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3


def _pair(v) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv2d(nn.Module):
  """Conv (no bias) -> batch norm (inference, eps 1e-3) -> ReLU."""
  features: int
  kernel_size: int | tuple[int, int]
  stride: int = 1
  padding: int | tuple[int, int] = 0

  @nn.compact
  def __call__(self, x):
    ph, pw = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel_size),
                strides=_pair(self.stride), padding=((ph, ph), (pw, pw)),
                use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
    return nn.relu(x)


def _avg_pool_same(x):
  """3x3 stride-1 average over the valid pixels only (TF's SAME pool)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_valid(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(64, 1, name="branch1x1")(x)
    b5 = BasicConv2d(48, 1, name="branch5x5_1")(x)
    b5 = BasicConv2d(64, 5, padding=2, name="branch5x5_2")(b5)
    b3 = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(b3)
    b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_3")(b3)
    bp = BasicConv2d(self.pool_features, 1, name="branch_pool")(
        _avg_pool_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, 3, stride=2, name="branch3x3")(x)
    bd = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, 3, stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_valid(x)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, 1, name="branch1x1")(x)
    b7 = BasicConv2d(c7, 1, name="branch7x7_1")(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv2d(c7, 1, name="branch7x7dbl_1")(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv2d(192, 1, name="branch_pool")(_avg_pool_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(192, 1, name="branch3x3_1")(x)
    b3 = BasicConv2d(320, 3, stride=2, name="branch3x3_2")(b3)
    b7 = BasicConv2d(192, 1, name="branch7x7x3_1")(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv2d(192, 3, stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_valid(x)], axis=-1)


class InceptionE(nn.Module):
  """FIDInceptionE_1 (`max_pool=False`) and FIDInceptionE_2 (True)."""
  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(320, 1, name="branch1x1")(x)
    b3 = BasicConv2d(384, 1, name="branch3x3_1")(x)
    b3 = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
    ], axis=-1)
    bd = BasicConv2d(448, 1, name="branch3x3dbl_1")(x)
    bd = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
    ], axis=-1)
    if self.max_pool:  # the TF graph's quirk in its last block
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1),
                           padding=((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_same(x)
    bp = BasicConv2d(192, 1, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class Logits(nn.Module):
  """The TF graph's 1008-way layer: (pool @ W, pool @ W + b)."""

  @nn.compact
  def __call__(self, pool):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (pool.shape[-1], NUM_LOGITS))
    bias = self.param("bias", nn.initializers.zeros, (NUM_LOGITS,))
    unbiased = pool @ kernel
    return unbiased, unbiased + bias


def resize_bilinear(x: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """(N, H, W, C) -> (N, size, size, C) as torch's bilinear interpolate with
  align_corners=False and no antialiasing (half-pixel centres; samples
  outside the image take the edge pixel), what pytorch-fid feeds its net."""
  n, h, w, c = x.shape
  if (h, w) == (size, size):
    return x
  return jax.image.resize(x, (n, size, size, c), "bilinear", antialias=False)


class InceptionV3(nn.Module):
  """The FID Inception-v3. Call on (N, H, W, 3) float images in [0, 1].

  Returns a dict: `pool` (N, 2048), `logits_unbiased` and `logits`
  (N, 1008). With `resize_input=False` the input must be at least 75x75.
  """
  resize_input: bool = True

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"expected (N, H, W, 3) images, got {x.shape}")
    x = x.astype(jnp.float32)
    if self.resize_input:
      x = resize_bilinear(x)
    x = 2 * x - 1
    x = BasicConv2d(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
    x = _max_pool_valid(x)
    x = BasicConv2d(80, 1, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, 3, name="Conv2d_4a_3x3")(x)
    x = _max_pool_valid(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(max_pool=False, name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    pool = x.mean(axis=(1, 2))
    unbiased, logits = Logits(name="fc")(pool)
    return {"pool": pool, "logits_unbiased": unbiased, "logits": logits}


# --- pytorch-fid state dict <-> Flax variables --------------------------------

_SKIPPED = ("num_batches_tracked",)
_TORCH_LEAF = {("params", "kernel"): "weight", ("params", "scale"): "weight",
               ("params", "bias"): "bias", ("batch_stats", "mean"):
               "running_mean", ("batch_stats", "var"): "running_var"}


def _flat(tree, prefix=()):
  for k, v in tree.items():
    if isinstance(v, Mapping):
      yield from _flat(v, prefix + (k,))
    else:
      yield prefix + (k,), v


def _torch_layout(leaf: str, value):
  """A Flax leaf in torch's layout: HWIO -> OIHW, (in, out) -> (out, in)."""
  if leaf != "kernel":
    return value
  return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T


def _torch_items(variables: Mapping):
  """(torch key, flax collection, flax path, value) of every leaf."""
  for collection in ("params", "batch_stats"):
    for path, value in _flat(variables[collection]):
      key = ".".join(path[:-1] + (_TORCH_LEAF[(collection, path[-1])],))
      yield key, collection, path, value


def state_dict_from_variables(variables: Mapping) -> dict[str, np.ndarray]:
  """pytorch-fid's state dict (keys, layouts) of Flax variables."""
  return {key: np.ascontiguousarray(_torch_layout(path[-1], np.asarray(v)))
          for key, _, path, v in _torch_items(variables)}


def variables_from_state_dict(state: Mapping[str, np.ndarray]) -> dict:
  """Flax variables of `InceptionV3` from a pytorch-fid state dict.

  `state` maps pytorch-fid's keys (`Mixed_5b.branch1x1.conv.weight`, ...,
  `fc.bias`; `num_batches_tracked` ignored) to numpy arrays. Raises
  ValueError naming the missing, unexpected or misshapen keys, so a wrong
  file never yields features.
  """
  items = list(_torch_items(variable_shapes()))
  want = {key: _torch_layout(path[-1], np.broadcast_to(0, s.shape)).shape
          for key, _, path, s in items}
  have = {k: tuple(np.shape(v)) for k, v in state.items()
          if k.rsplit(".", 1)[-1] not in _SKIPPED}
  missing = sorted(want.keys() - have.keys())
  extra = sorted(have.keys() - want.keys())
  wrong = sorted(f"{k} {have[k]} (want {want[k]})"
                 for k in want.keys() & have.keys() if have[k] != want[k])
  if missing or extra or wrong:
    def few(keys):
      more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
      return ", ".join(keys[:3]) + more
    problems = [f"{label}: {few(keys)}" for label, keys in
                (("missing", missing), ("unexpected", extra),
                 ("wrong shape", wrong)) if keys]
    raise ValueError("not a pytorch-fid Inception state dict; "
                     + "; ".join(problems))
  variables: dict = {"params": {}, "batch_stats": {}}
  for key, collection, path, _ in items:
    value = np.asarray(state[key], np.float32)
    if path[-1] == "kernel":  # back to Flax's layout
      value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
    node = variables[collection]
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = np.ascontiguousarray(value)
  return variables


def variable_shapes() -> dict:
  """The variables' shapes (jax.ShapeDtypeStruct), without computing them."""
  model = InceptionV3(resize_input=False)
  x = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  return dict(jax.eval_shape(model.init, jax.random.PRNGKey(0), x))


def random_variables(seed: int = 0) -> dict:
  """Random variables of the right shapes (tests; no pretrained meaning).

  Conv/dense weights ~ N(0, 1/fan_in) so activations stay O(1) through the
  48 layers; batch-norm statistics drawn away from (0, 1) so that the test
  exercises them.
  """
  rng = np.random.default_rng(seed)
  out: dict = {}
  for path, s in _flat(variable_shapes()):
    leaf = path[-1]
    if leaf == "kernel":
      fan_in = int(np.prod(s.shape[:-1]))
      v = rng.normal(0, np.sqrt(2.0 / fan_in), s.shape)
    elif leaf == "scale":
      v = rng.uniform(0.5, 1.5, s.shape)
    elif leaf == "var":
      v = rng.uniform(0.5, 2.0, s.shape)
    else:  # bias, mean
      v = rng.normal(0, 0.1, s.shape)
    node = out
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[leaf] = v.astype(np.float32)
  return out
