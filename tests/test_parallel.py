"""Data parallelism over the device mesh: what the compiled step shards, and
that training gives the same numbers on 1 and on 8 devices."""

import re

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from conftest import load_config
from parity import TOLERANCE, norm, params, relative_difference
from gen_jax import parallel, train
from gen_jax.errors import ConfigError

NUM_STEPS = 10
# srgan: its two phases (pre-training, then adversarial) within NUM_STEPS.
MODELS = ("dcgan", "wgan_gp", "vae", "srgan",
          "cyclegan", "stylegan2")
# CycleGAN: 2 steps. Its small run's rate decays to 0 by step 4 (its
# num_steps), so later steps move nothing, and by then 1- and 8-device
# rounding has been amplified step by step (instance norm over maps of a
# few pixels, Adam dividing near-zero gradients by their RMS): the same
# comparison measured 0.0135 after 10 steps with g_down=2 and the identity
# term, 3e-4 with digit_domains' present settings: chaotic, not a margin.
# After 2 steps (one update seen by the second step's losses) it is 3e-6
# of the distance moved, the losses equal to 1e-6: 4 orders below the bar.
# StyleGAN2: 4 steps hold two rounds of its lazy R1 and path-length terms
# (every 2 steps in `small`) and of style mixing and noise draws, whose
# keys must not depend on the device count; compiling is its cost.
STEPS = {"cyclegan": 2, "stylegan2": 4}
# StyleGAN2 at 8 px (the digits' own size): blocks at 4x4 and 8x8, each
# with noise inputs, styles to mix, FIR resampling and the lazy terms, as
# at 16 px, with one block fewer to compile (compiling the 1- and 8-device
# steps, about 35 s each, was most of this test's 83 s at 16 px; the
# architecture itself: test_stylegan2.py).
IMAGE_SIZE = {"stylegan2": 8}


def small_config(name: str, **mesh):
  config = load_config(name, "small")
  if name in IMAGE_SIZE:
    config.data.image_size = IMAGE_SIZE[name]
  for k, v in mesh.items():
    config.mesh[k] = v
  return config


def per_device_noise(trainer, mesh) -> None:
  """A deliberately wrong `draw_noise`: each device draws its own rows from
  fold_in(key, its index), so the values depend on the number of devices."""
  correct = trainer.draw_noise
  devices = parallel.data_parallel_size(mesh)

  def draw(key, n):
    dim = jax.eval_shape(lambda k: correct(k, n), key).shape[1]

    def local(key):
      key = jax.random.fold_in(key, jax.lax.axis_index(parallel.DATA))
      return jax.random.normal(key, (n // devices, dim))
    return jax.shard_map(local, mesh=mesh, in_specs=P(),
                         out_specs=P(parallel.DATA))(key)
  trainer.draw_noise = draw


def train_steps(config, num_steps: int, wrong_noise: bool = False):
  """(initial state, final state, per-step metrics) of the loop's compiled
  step on the loop's mesh and batches, without evaluation or checkpoints."""
  s = train.setup(config)
  if wrong_noise:  # the model's trainer, inside the non-finite guard
    per_device_noise(s.trainer.inner, s.mesh)
  state = s.init(s.key)
  initial = jax.device_get(state)
  stream = s.stream()
  history = []
  for step in range(num_steps):
    state, metrics = s.step_for(step)(state, s.batch(stream))
    history.append(jax.device_get(metrics))
  return initial, jax.device_get(state), history


def compare_runs(name: str, wrong_noise: bool = False):
  """(relative parameter difference, per-metric loss differences scaled by
  each metric's largest value) of 1- vs 8-device runs."""
  steps = STEPS.get(name, NUM_STEPS)
  start, one, h1 = train_steps(small_config(name, num_devices=1), steps,
                               wrong_noise)
  start8, eight, h8 = train_steps(small_config(name), steps, wrong_noise)
  assert norm(jax.tree.map(lambda x, y: x - y, params(start),
                           params(start8))) == 0.0  # same initialisation
  losses = {}
  for k in h1[0]:
    a = np.array([h[k] for h in h1])
    b = np.array([h[k] for h in h8])
    losses[k] = float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))
  return relative_difference(one, eight, start), losses


@pytest.mark.parametrize("name", MODELS)
def test_same_numbers_on_1_and_8_devices(name):
  params_diff, loss_diffs = compare_runs(name)
  print(f"{name}: relative parameter difference {params_diff:.3g}, losses "
        f"{ {k: f'{v:.2g}' for k, v in loss_diffs.items()} }")
  assert params_diff < TOLERANCE
  assert max(loss_diffs.values()) < TOLERANCE, loss_diffs


@pytest.mark.parametrize("name", ["wgan_gp", "vae"])
def test_per_device_noise_breaks_the_comparison(name):
  """The tolerance discriminates: noise drawn per device (a classic
  data-parallel bug) makes the 1- and 8-device runs differ far beyond it.
  WGAN-GP is the closest call (0.26 against 2e-2); DCGAN, at 0.53, is left
  out to save time (docs/multihost.md)."""
  params_diff, _ = compare_runs(name, wrong_noise=True)
  print(f"{name} with per-device noise: relative parameter difference "
        f"{params_diff:.3g}")
  assert params_diff > 5 * TOLERANCE


# -- what the compiled step shards -------------------------------------------

GLOBAL_BATCH = 24   # 3 rows per device; no layer of the small models has 24


@pytest.mark.parametrize("name", ["dcgan", "vae"])
def test_compiled_step_is_data_parallel(name):
  config = small_config(name)
  config.data.batch_size = GLOBAL_BATCH
  s = train.setup(config)
  state = s.init(jax.random.key(0))
  batch = s.batch(s.stream())
  compiled = s.train_step.lower(state, batch).compile()

  (state_in, batch_in), _ = compiled.input_shardings
  state_out, metrics_out = compiled.output_shardings
  for s in jax.tree.leaves([state_in, state_out, metrics_out]):
    assert s.is_fully_replicated
  assert batch_in["x"].spec == P(None, parallel.DATA)

  # Per device, every batch-shaped array (real, noise, fakes, activations)
  # has 3 rows: no array of the 24-row global batch exists, so nothing is
  # computed whole on each device, and the noise is drawn 3 rows per device.
  hlo = compiled.as_text()
  shapes = re.findall(r"[fsu]\d+\[([\d,]*)\]", hlo)
  assert shapes and not [s for s in shapes
                         if str(GLOBAL_BATCH) in s.split(",")]
  dim = (config.model.noise_dim if name == "dcgan"
         else config.model.latent_dim)
  assert f"f32[3,{dim}]" in hlo
  # Batch statistics and gradients are summed over devices inside the step.
  assert "all-reduce" in hlo


def test_sample_is_sharded_over_the_batch():
  config = small_config("dcgan")
  s = train.setup(config)
  state = s.init(jax.random.key(0))
  samples = jax.jit(s.trainer.sample, static_argnums=2)(
      state, jax.random.key(1), 16)["x"]
  assert samples.sharding.spec[0] == parallel.DATA
  assert {s.data.shape[0] for s in samples.addressable_shards} == {2}


# -- mesh and batch-size checks ------------------------------------------------

def test_mesh_over_all_or_the_first_devices():
  assert parallel.make_mesh().shape == {"data": 8}
  assert parallel.make_mesh(num_devices=1).devices.size == 1
  two_axes = parallel.make_mesh((-1, 2), ("data", "model"))
  assert two_axes.shape == {"data": 4, "model": 2}
  with pytest.raises(ConfigError, match="does not fit 8 devices"):
    parallel.make_mesh((3, -1), ("data", "model"))
  with pytest.raises(ConfigError, match="has 4 devices, but there are 8"):
    parallel.make_mesh((4,))
  with pytest.raises(ConfigError, match="num_devices=9"):
    parallel.make_mesh(num_devices=9)


def test_batch_size_must_split_over_devices_and_processes():
  mesh = parallel.make_mesh()
  parallel.check_batch_size(16, mesh, "config.data.batch_size")
  with pytest.raises(ConfigError, match=r"batch_size=12 must be divisible by "
                     r"the 8 devices .* try 8 or 16"):
    parallel.check_batch_size(12, mesh, "config.data.batch_size")
  # 3 processes x 8 devices: each process loads B/3, each device holds B/8.
  with pytest.raises(ConfigError, match=r"and the 3 process\(es\); try 24 or "
                     r"48"):
    parallel.check_batch_size(32, mesh, "config.data.batch_size",
                              process_count=3)
  parallel.check_batch_size(48, mesh, "config.data.batch_size",
                            process_count=3)


# -- data streams --------------------------------------------------------------

GRAIN_BINARIZATION = pytest.mark.xfail(
    strict=True, reason="the grain pipeline draws dynamic binarization per "
    "process ([seed, batch, process_index]), not for the global batch")


@pytest.mark.parametrize("name,arg", [
    ("vae", "digits,small"), ("dcgan", "stacked_digits,small"),
    ("dcgan", "mnist,small"),
    pytest.param("vae", "mnist,small", marks=GRAIN_BINARIZATION)])
def test_process_slices_make_up_the_single_process_batch(name, arg):
  """Put together, the processes' local batches are the 1-process global
  batch row for row (rows are paired with noise by position), including
  the dynamic binarization of the VAE's digits."""
  from gen_jax import data
  from gen_jax.data.testing import mock_tfds
  config = load_config(name, arg)
  with mock_tfds(num_examples=64):
    dataset = data.get_dataset(config.data)
    check_process_slices(dataset, batch=24)


def check_process_slices(dataset, batch: int) -> None:
  whole = dataset.train_stream(seed=3, local_batch_size=batch,
                               process_index=0, process_count=1)
  parts = [dataset.train_stream(seed=3, local_batch_size=batch // 3,
                                process_index=p, process_count=3)
           for p in range(3)]
  for _ in range(3):
    expected = next(whole)
    got = [next(s) for s in parts]
    for k in expected:
      np.testing.assert_array_equal(
          np.concatenate([g[k] for g in got]), expected[k])
