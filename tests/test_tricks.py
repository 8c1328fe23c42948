"""Mode-collapse remedies of the GAN trainer, each checked for its behaviour."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from gen_jax import config_lib, data, losses, tricks
from gen_jax.errors import ConfigError
from gen_jax.models.layers import MinibatchStd
from gen_jax.trainers.gan import GanTrainer


def ring_config(**overrides):
  """The small 2D GAN with `section__field=value` overrides."""
  c = load_config("gan_2d", "ring,small")
  for key, value in overrides.items():
    section, field = key.split("__")
    c[section][field] = value
  config_lib.validate(c)
  return c


def make(config):
  info = data.get_dataset(config.data).info
  trainer = GanTrainer(config, info)
  return trainer, jax.jit(trainer.init)(jax.random.key(0))


def real_batch(config, n_critic=1, seed=0):
  x = np.random.default_rng(seed).normal(
      size=(n_critic, config.data.batch_size, 2)).astype(np.float32)
  return {"x": jnp.asarray(x)}


# -- packing ---------------------------------------------------------------

def test_pack_points_concatenates_consecutive_samples():
  x = jnp.arange(12.0).reshape(6, 2)  # sample i = (2i, 2i+1)
  packed = tricks.pack(x, 3)
  np.testing.assert_array_equal(packed, [[0, 1, 2, 3, 4, 5],
                                         [6, 7, 8, 9, 10, 11]])


def test_pack_images_concatenates_on_channels():
  # Sample i is filled with the value 10*i + channel.
  x = (10.0 * jnp.arange(4)[:, None, None, None]
       + jnp.arange(3)[None, None, None, :]) * jnp.ones((4, 2, 2, 3))
  packed = tricks.pack(x, 2)
  assert packed.shape == (2, 2, 2, 6)
  # Pack 1 holds samples 2 and 3: channels 0-2 of sample 2, then sample 3's.
  np.testing.assert_array_equal(packed[1, 0, 1], [20, 21, 22, 30, 31, 32])
  assert tricks.packed_shape((16, 16, 3), 4) == (16, 16, 12)


def test_packed_discriminator_input_shape():
  config = ring_config(gan__pack=4)
  trainer, state = make(config)
  kernel = state.params["discriminator"]["Dense_0"]["kernel"]
  assert kernel.shape[0] == 2 * 4  # 4 points of 2 features
  x = jnp.zeros((config.data.batch_size, 2))
  assert trainer.d_input(x, jax.random.key(0), state.step).shape == (
      config.data.batch_size // 4, 8)
  state, metrics = jax.jit(trainer.train_step)(state, real_batch(config))
  assert np.isfinite(metrics["d_loss"])


def test_packed_dcgan_critic_has_pack_times_channels():
  c = load_config("dcgan", "small")
  c.gan.pack = 2
  config_lib.validate(c)
  trainer = GanTrainer(c, data.get_dataset(c.data).info)
  state = jax.eval_shape(trainer.init, jax.random.key(0))
  kernel = jax.tree.leaves(state.params["discriminator"]["Conv_0"])[0]
  assert kernel.shape[2] == 2  # 2 digits of 1 channel


def test_batch_not_divisible_by_pack_is_a_config_error():
  c = load_config("gan_2d", "ring,small")
  c.gan.pack = 3
  with pytest.raises(ConfigError, match="divisible by config.gan.pack=3"):
    config_lib.validate(c)


# -- minibatch standard deviation ------------------------------------------

def test_minibatch_std_hand_computed_points():
  x = jnp.array([[1.0, 2.0], [3.0, 6.0], [0.0, 0.0], [2.0, 2.0]])
  y = MinibatchStd(group_size=2).apply({}, x)
  # Group {0, 1}: stds (1, 2) -> 1.5; group {2, 3}: stds (1, 1) -> 1.
  np.testing.assert_allclose(y[:, :2], x)
  np.testing.assert_allclose(y[:, 2], [1.5, 1.5, 1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("group", [0, 4])  # whole batch; larger than batch
def test_minibatch_std_images_one_group(group):
  x = jnp.array([[0.0, 0.0], [2.0, 4.0]]).reshape(2, 1, 2, 1)
  y = MinibatchStd(group_size=group).apply({}, x)  # one group of 2
  assert y.shape == (2, 1, 2, 2)
  np.testing.assert_allclose(y[..., 1], 1.5, rtol=1e-6)  # mean(1, 2)


def test_minibatch_std_adds_one_critic_input_feature():
  config = ring_config(model__minibatch_std=True)
  trainer, state = make(config)
  width = config.model.mlp.d_hidden[-1]
  assert state.params["discriminator"]["Dense_2"]["kernel"].shape == (width + 1, 1)
  _, metrics = jax.jit(trainer.train_step)(state, real_batch(config))
  assert np.isfinite(metrics["d_loss"])


def test_minibatch_std_group_must_divide_critic_batch():
  c = load_config("gan_2d", "ring,small")  # batch 16, pack 2 -> 8 packs
  c.gan.pack = 2
  c.model.minibatch_std = True
  c.model.minibatch_std_group = 3
  with pytest.raises(ConfigError, match="minibatch_std_group=3"):
    config_lib.validate(c)


# -- instance noise --------------------------------------------------------

@pytest.mark.parametrize("step,expected", [(0, 0.5), (50, 0.25), (100, 0.0),
                                           (400, 0.0)])
def test_instance_noise_std_and_annealing(step, expected):
  config = ring_config(gan__instance_noise=0.5,
                       gan__instance_noise_anneal_steps=100)
  trainer, _ = make(config)
  x = jnp.zeros((4000, 2))
  y = trainer.d_input(x, jax.random.key(1), jnp.asarray(step))
  # 8000 draws: the sample std is within 2% of the true std (5 sigma).
  assert float(jnp.std(y)) == pytest.approx(expected, rel=0.05, abs=1e-7)


def test_instance_noise_reaches_the_critic():
  config = ring_config(gan__instance_noise=0.5, data__batch_size=512)
  trainer, state = make(config)
  seen = []
  critic = trainer.critic

  def recording_critic(p, s, x, y):
    jax.debug.callback(lambda v: seen.append(np.asarray(v)), x,
                       ordered=True)
    return critic(p, s, x, y)
  trainer.critic = recording_critic
  batch = {"x": jnp.zeros((1, 512, 2))}  # real data all zero
  jax.block_until_ready(jax.jit(trainer.train_step)(state, batch))
  real_seen = seen[0]  # the critic update's first call is on real data
  assert real_seen.shape == (512, 2)
  assert float(np.std(real_seen)) == pytest.approx(0.5, rel=0.1)


# -- one-sided label smoothing ---------------------------------------------

def test_label_smoothing_loss_on_fixed_logits():
  real, fake = jnp.array([0.5, -1.0]), jnp.array([0.2])
  softplus = lambda v: math.log1p(math.exp(v))
  t = 0.9  # smoothing 0.1
  expected = (np.mean([t * softplus(-r) + (1 - t) * softplus(r)
                       for r in (0.5, -1.0)]) + softplus(0.2))
  loss = losses.with_label_smoothing(
      losses.GAN_LOSSES.get("non_saturating"), 0.1)
  assert float(loss.discriminator(real, fake)) == pytest.approx(expected,
                                                                rel=1e-6)
  # The generator's loss and the fakes' target are unchanged.
  assert float(loss.generator(fake)) == pytest.approx(softplus(-0.2), rel=1e-6)


def test_label_smoothing_is_wired_into_the_trainer():
  trainer, _ = make(ring_config(gan__label_smoothing=0.2))
  real, fake = jnp.array([1.0, 2.0]), jnp.array([-1.0])
  plain = losses.GAN_LOSSES.get("non_saturating").discriminator(real, fake)
  smoothed = trainer.loss.discriminator(real, fake)
  # d/dt of the real term is softplus(r) - softplus(-r) = r: smoothing 0.2
  # adds 0.2 * mean(real logits).
  assert float(smoothed - plain) == pytest.approx(0.2 * 1.5, rel=1e-5)


def test_label_smoothing_needs_a_cross_entropy_loss():
  c = load_config("wgan_gp", "small")
  c.gan.label_smoothing = 0.1
  with pytest.raises(ConfigError, match="needs a cross-entropy loss"):
    config_lib.validate(c)


# -- unrolled GAN ----------------------------------------------------------

def g_gradient(trainer, state, batch, key):
  z = trainer.draw_noise(key, trainer.batch_size)
  return jax.grad(lambda p: trainer.g_objective(
      p, state, z, None, batch["x"][-1], None, key)[0])(state.params["generator"])


def max_abs_diff(a, b):
  return max(float(jnp.max(jnp.abs(x - y)))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_unroll_zero_is_the_plain_generator_loss():
  config = ring_config()
  trainer, state = make(config)
  key = jax.random.key(3)
  z = trainer.draw_noise(key, trainer.batch_size)
  loss, _ = trainer.g_objective(state.params["generator"], state, z, None,
                                None, None, key)
  fake, _ = trainer.generate(state.params["generator"],
                             state.model_state["generator"], z, None,
                             train=True)
  logits, _ = trainer.critic(state.params["discriminator"],
                             state.model_state["discriminator"], fake, None)
  assert float(loss) == pytest.approx(float(jnp.mean(jax.nn.softplus(
      -logits))), rel=1e-6)


def test_unrolled_loss_is_against_a_critic_one_adam_step_ahead():
  config = ring_config(gan__unroll_steps=1)
  trainer, state = make(config)
  key = jax.random.key(3)
  batch = real_batch(config)
  real = batch["x"][-1]
  z = trainer.draw_noise(key, trainer.batch_size)
  loss, _ = trainer.g_objective(state.params["generator"], state, z, None,
                                real, None, key)

  # Independently: one Adam step of the critic on its cross-entropy loss,
  # then Metz et al.'s surrogate: minus that loss at the stepped critic.
  fake, _ = trainer.generate(state.params["generator"],
                             state.model_state["generator"], z, None,
                             train=True)
  d = lambda p, x: trainer.discriminator.apply({"params": p}, x)

  def d_loss(p):
    return (jnp.mean(jax.nn.softplus(-d(p, real)))
            + jnp.mean(jax.nn.softplus(d(p, fake))))
  o = config.optim
  adam = optax.adam(o.d_lr, b1=o.d_b1, b2=o.d_b2)
  updates, _ = adam.update(jax.grad(d_loss)(state.params["discriminator"]), state.opt_state["discriminator"],
                           state.params["discriminator"])
  ahead = optax.apply_updates(state.params["discriminator"], updates)
  assert float(loss) == pytest.approx(-float(d_loss(ahead)), rel=1e-5)


def test_unrolling_changes_the_generator_gradient_only():
  plain_trainer, state = make(ring_config())
  unrolled_trainer, _ = make(ring_config(gan__unroll_steps=2))
  batch, key = real_batch(plain_trainer.config), jax.random.key(5)
  g_plain = jax.jit(g_gradient, static_argnums=0)(plain_trainer, state,
                                                   batch, key)
  g_unrolled = jax.jit(g_gradient, static_argnums=0)(unrolled_trainer, state,
                                                     batch, key)
  assert max_abs_diff(g_plain, g_unrolled) > 1e-4
  # The critic's own update is a normal one: unrolling is a look-ahead.
  after_plain, _ = jax.jit(plain_trainer.train_step)(state, batch)
  after_unrolled, _ = jax.jit(unrolled_trainer.train_step)(state, batch)
  assert max_abs_diff(after_plain.params["discriminator"], after_unrolled.params["discriminator"]) == 0.0
  assert max_abs_diff(after_plain.opt_state["discriminator"], after_unrolled.opt_state["discriminator"]) == 0.0
  assert max_abs_diff(after_plain.params["generator"], after_unrolled.params["generator"]) > 0.0


def test_unrolled_gradient_tends_to_the_value_function_s_as_lr_vanishes():
  # With a critic that barely moves, f_K's gradient is that of f itself:
  # for the cross-entropy loss, the minimax generator loss.
  unrolled_trainer, state = make(ring_config(optim__d_lr=1e-12,
                                             gan__unroll_steps=3))
  minimax_trainer, _ = make(ring_config(optim__d_lr=1e-12,
                                        gan__loss="minimax"))
  batch, key = real_batch(unrolled_trainer.config), jax.random.key(5)
  diff = max_abs_diff(g_gradient(minimax_trainer, state, batch, key),
                      g_gradient(unrolled_trainer, state, batch, key))
  assert diff < 1e-6


# -- generator EMA ---------------------------------------------------------

def test_ema_follows_the_recursion_over_steps():
  config = ring_config(gan__ema_decay=0.9)
  trainer, state = make(config)
  step = jax.jit(trainer.train_step)
  expected = state.params["generator"]
  for i in range(3):
    state, _ = step(state, real_batch(config, seed=i))
    expected = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, expected,
                            state.params["generator"])
  assert max_abs_diff(state.ema["generator"], expected) < 1e-6
  assert max_abs_diff(state.ema["generator"], state.params["generator"]) > 1e-5


def test_ema_samples_use_the_ema_generator_s_own_batch_statistics():
  config = ring_config(gan__ema_decay=0.9)
  trainer, state = make(config)
  state, _ = trainer.train_step(state, real_batch(config))
  key, n = jax.random.key(7), 64
  samples = trainer.sample(state, key, n)["x"]
  # Evaluation-mode output with standing statistics from the noise drawn
  # with fold_in(key, 1) equals training-mode output on that same noise.
  z_stand = trainer.draw_noise(jax.random.fold_in(key, 1), n)
  stats = trainer.standing_stats(state.ema["generator"],
                                 state.model_state["generator"], None,
                                 jax.random.fold_in(key, 1), n)
  train_mode, _ = trainer.generate(state.ema["generator"],
                                   state.model_state["generator"], z_stand,
                                   None, train=True)
  eval_mode, _ = trainer.generate(state.ema["generator"], stats, z_stand,
                                  None, train=False)
  np.testing.assert_allclose(eval_mode, train_mode, rtol=1e-4, atol=1e-5)
  expected, _ = trainer.generate(state.ema["generator"], stats,
                                 trainer.draw_noise(key, n), None,
                                 train=False)
  np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field,value,message", [
    ("gan.pack", 0, "config.gan.pack=0 must be positive"),
    ("gan.unroll_steps", -1, "config.gan.unroll_steps=-1 must be >= 0"),
    ("gan.instance_noise", -0.1, "config.gan.instance_noise=-0.1 must be"),
    ("gan.label_smoothing", 1.0, "config.gan.label_smoothing=1.0 must be in"),
    ("model.minibatch_std_group", -2, "minibatch_std_group=-2 must be >= 0"),
    ("train.num_seeds", 0, "config.train.num_seeds=0 must be positive"),
    ("model.mlp.d_maxout_pieces", 1,
     "d_maxout_pieces=1 must be 0 (LeakyReLU"),
    ("model.mlp.init_std", -0.02,
     "config.model.mlp.init_std=-0.02 must be >= 0"),
])
def test_bad_trick_values_are_config_errors(field, value, message):
  c = load_config("gan_2d", "ring,small")
  *parents, name = field.split(".")
  node = c
  for part in parents:
    node = node[part]
  node[name] = value
  with pytest.raises(ConfigError, match=re.escape(message)):
    config_lib.validate(c)
