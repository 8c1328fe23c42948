"""What makes compilation cheaper must not change a number: `init` at a lower
backend optimisation level gives bitwise the same state, `init` compiled on a
thread beside the first step the same run, and the scanned critic loop
(`gan.critic_loop='scan'`) the unrolled loop's updates (up to rounding)."""

import logging
from concurrent.futures import Future

import jax
import numpy as np
import pytest

from conftest import assert_bitwise_equal, load_config, read_checkpoint
from gen_jax import train
from gen_jax.errors import ConfigError
from gen_jax.trainers import gan


def _leaves(tree):
  return [np.asarray(jax.random.key_data(x)
                     if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                     else x) for x in jax.tree.leaves(tree)]


def _setup(name, arg="digits,small", **fields):
  c = load_config(name, arg)
  c.mesh.num_devices = 1
  for path, value in fields.items():
    group, field = path.split("__")
    c[group][field] = value
  return train.setup(c)


def test_init_compiled_cheaply_is_bitwise_the_default():
  s = _setup("dcgan")
  cheap = s.init(s.key)  # train.INIT_COMPILER_OPTIONS
  default = jax.jit(s.trainer.init)(s.key)
  assert train.INIT_COMPILER_OPTIONS  # the lever is on
  for a, b in zip(_leaves(cheap), _leaves(default), strict=True):
    np.testing.assert_array_equal(a, b)


def _short_run(workdir, name="dcgan", arg="digits,small"):
  c = load_config(name, arg)
  c.mesh.num_devices = 1
  c.train.num_steps = c.train.eval_every = c.train.checkpoint_every = 2
  c.evals = ()
  c.wandb.mode = "disabled"
  train.train_and_evaluate(c, str(workdir))


def test_init_on_a_thread_beside_the_first_step(tmp_path, caplog,
                                               monkeypatch):
  # The step compiled ahead (abstract state, sharded) is the one the loop
  # calls: jit(step) is lowered and compiled once.
  with jax.log_compiles(True), caplog.at_level(logging.WARNING):
    _short_run(tmp_path / "threaded")
  assert len([m for m in caplog.messages
              if m.startswith("Compiling jit(step)")]) == 1
  # The same run with init on the main thread, before the step.
  def at_once(fn):
    future = Future()
    future.set_result(fn())
    return future
  monkeypatch.setattr(train, "_in_background", at_once)
  _short_run(tmp_path / "sequential")
  assert_bitwise_equal(read_checkpoint(tmp_path / "threaded", 2),
                       read_checkpoint(tmp_path / "sequential", 2))


def _inner(trainer):
  while hasattr(trainer, "inner"):
    trainer = trainer.inner
  return trainer


def test_scan_critic_is_opt_in_and_only_for_loop_safe_architectures():
  assert not _inner(_setup("wgan_gp").trainer).scan_critic  # default unroll
  assert _inner(_setup("wgan_gp", gan__critic_loop="scan").trainer).scan_critic
  assert {n for n in gan.ARCHS if gan.ARCHS.get(n).loop_safe} >= {
      "dcgan", "mlp"}
  assert not gan.ARCHS.get("resnet").loop_safe  # plain convolutions
  with pytest.raises(ConfigError, match=r"critic_loop='scan': arch "
                     r"'resnet'.*needs one of: dcgan, mlp"):
    _setup("sngan", gan__critic_loop="scan")
  with pytest.raises(ConfigError, match="critic_loop='loop' is not one of"):
    _setup("wgan_gp", gan__critic_loop="loop")


def test_scanned_critic_matches_the_unrolled_loop():
  # With ADA, whose per-critic-batch sums ride in the loop's carry.
  fields = {"gan__ada_target": 0.6, "gan__augment": "color,translation",
            "gan__ada_interval": 1}
  results = []
  for scan in (True, False):
    s = _setup("wgan_gp", **fields)
    _inner(s.trainer).scan_critic = scan
    step = jax.jit(s.trainer.train_step)
    state = s.init(s.key)
    stream = s.stream()
    for _ in range(2):
      state, metrics = step(state, s.batch(stream))
    results.append((state, metrics))
  (scanned, m_scan), (unrolled, m_unroll) = results
  assert set(m_scan) == set(m_unroll)
  for k in m_scan:
    np.testing.assert_allclose(m_scan[k], m_unroll[k], rtol=1e-4, atol=1e-5,
                               err_msg=k)
  for a, b in zip(_leaves(scanned), _leaves(unrolled), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # The overfitting signal of every critic batch was counted.
  assert int(scanned.aux["ada_count"]) == int(unrolled.aux["ada_count"])
