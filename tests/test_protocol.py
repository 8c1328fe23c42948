"""The trainer protocol: every registered trainer, architecture, term and
evaluator is reachable from a config; wrappers keep the protocol; lazy
terms, the orthogonal regulariser and standing statistics by hand."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gen_jax import config_lib, data, evaluators, nonfinite, objectives, seeds
from gen_jax.errors import ConfigError
from gen_jax.trainers import TRAINERS, gan, vae
from gen_jax.trainers.base import Network, TrainState


@pytest.mark.parametrize("trainer,arch", [
    ("gan", a) for a in gan.ARCHS] + [("vae", a) for a in vae.ARCHS])
def test_every_architecture_builds_from_its_own_sub_config(trainer, arch):
  c = config_lib.base(trainer, "digits" if arch != "mlp" or trainer == "vae"
                      else "ring")
  c.model = (gan if trainer == "gan" else vae).model_config(arch)
  config_lib.make_small(c)
  config_lib.validate(c)
  assert set(c.model.keys()) & set(
      (gan if trainer == "gan" else vae).ARCHS) == {arch}
  info = data.get_dataset(c.data).info
  t = TRAINERS.get(trainer).create(c, info)
  state = jax.eval_shape(t.init, jax.random.key(0))
  assert isinstance(state, TrainState)
  assert set(state.params) == set(t.networks)
  assert set(state.opt_state) == {n for n, net in t.networks.items()
                                  if net.optimizer is not None}


def test_a_config_holds_only_its_architecture_s_fields():
  c = load_config("dcgan", "small")
  assert "mlp" not in c.model and "g_hidden" not in c.model
  c.model.arch = "mlp"
  with pytest.raises(ConfigError, match=re.escape(
      "config.model.mlp is missing: config.model.arch='mlp' reads it")):
    config_lib.validate(c)
  c = load_config("dcgan", "small")
  c.model.mlp = gan.ARCHS.get("mlp").defaults()
  with pytest.raises(ConfigError, match="config.model.mlp is set but "
                     "config.model.arch='dcgan'"):
    config_lib.validate(c)


def test_unknown_trainer_lists_the_registered_ones():
  c = load_config("vae", "small")
  c.trainer = "flow"
  with pytest.raises(ConfigError, match="config.trainer='flow' is not one "
                     "of: cyclegan, gan, pix2pix, srgan, vae"):
    config_lib.validate(c)


def test_evals_names_are_checked():
  c = load_config("dcgan", "small")
  c.evals = ("fid",)
  with pytest.raises(ConfigError, match=re.escape(
      "config.evals='fid' is not one of: " + ", ".join(
          evaluators.EVALUATORS.names()))):
    config_lib.validate(c)


def test_an_evaluator_that_cannot_run_is_a_config_error():
  from gen_jax import train
  c = load_config("dcgan", "small")
  c.evals = ("held_out",)  # a GAN has no held-out likelihood
  with pytest.raises(ConfigError, match="'held_out' does not apply to "
                     "'digits' with this trainer; these do: domain, "
                     "inception, samples"):
    train.setup(c)


def test_default_evaluators_suit_the_dataset_and_trainer():
  from gen_jax import train
  names = {n: train.setup(load_config(*n.split(":"))).evaluation.names
           for n in ("vae:small", "gan_2d:ring,small", "cgan:small",
                     "pix2pix:small", "srgan:small", "cyclegan:small")}
  # The VAE gets the sample FID of the GANs for free.
  assert names["vae:small"] == ["domain", "held_out", "nll", "arithmetic",
                                "interpolation", "reconstructions",
                                "samples", "traversal"]
  assert names["gan_2d:ring,small"] == ["mixture", "samples"]
  assert names["cgan:small"] == ["class_accuracy", "domain", "intra_fid",
                                 "samples"]
  # Paired image-to-image: no prior; held-out metrics and the picture of
  # its samples, translations of held-out sources beside their targets.
  assert names["pix2pix:small"] == names["srgan:small"] == [
      "held_out", "translations"]
  # CycleGAN samples translations of held-out inputs: the sample metrics
  # apply to them, with its cycle picture and FIDs against the baseline.
  assert names["cyclegan:small"] == ["cycle_labels", "domain", "held_out",
                                     "translation_fid", "cycles", "samples"]


def test_wrappers_are_trainers_of_the_same_networks():
  c = load_config("vae", "small")
  inner = TRAINERS.get("vae").create(c, data.get_dataset(c.data).info)
  guarded = nonfinite.Guarded(inner, "skip")
  many = seeds.SeedTrainer(guarded, [3, 4])
  for t in (guarded, many):
    assert t.networks is inner.networks and hasattr(t, "held_out")
  assert many.num_runs == 2 and guarded.num_runs == 1
  state = many.init(many.root_key(0))
  assert jax.tree.leaves(state.params)[0].shape[0] == 2
  single = inner.init(jax.random.key(4))  # seed 4 is run 1
  np.testing.assert_array_equal(
      jax.tree.leaves(state.params)[0][1], jax.tree.leaves(single.params)[0])


def test_lazy_term_every_k_steps_with_weight_times_k():
  calls = objectives.Term("r", "d", lambda i: i["v"] * 2.0, weight=0.5,
                          every=4)
  plain = objectives.Term("p", "d", lambda i: i["v"], weight=1.0)
  other = objectives.Term("o", "g", lambda i: i["v"] * 100.0)
  fn = jax.jit(lambda step: objectives.objective(
      [calls, plain, other], "d", {"v": jnp.float32(3.0)}, step))
  total, metrics = fn(jnp.asarray(8))
  assert float(total) == pytest.approx(3.0 + 0.5 * 4 * 6.0)
  assert set(metrics) == {"r", "p"}  # the generator's term is not summed
  total, metrics = fn(jnp.asarray(9))
  assert float(total) == pytest.approx(3.0) and float(metrics["r"]) == 0.0


def test_orthogonal_regularizer_against_numpy():
  rng = np.random.default_rng(0)
  params = {"Dense_0": {"kernel": rng.normal(size=(5, 3)),
                        "bias": rng.normal(size=(3,))},
            "up0": {"kernel": rng.normal(size=(4, 4, 2, 3))},
            "embed": {"embedding": rng.normal(size=(10, 3))}}
  expected = 0.0
  for w in (params["Dense_0"]["kernel"],
            params["up0"]["kernel"].reshape(-1, 3)):
    gram = w.T @ w
    expected += np.sum((gram * (1 - np.eye(3))) ** 2)
  got = objectives.G_REGULARIZERS.get("orthogonal")(
      {"params": jax.tree.map(jnp.asarray, params)})
  assert float(got) == pytest.approx(expected, rel=1e-5)


def test_orthogonal_regularizer_is_a_generator_term():
  c = load_config("cgan", "small")
  c.gan.g_regularizer = "orthogonal"
  c.gan.g_regularizer_weight = 1e-4
  config_lib.validate(c)
  t = gan.GanTrainer(c, data.get_dataset(c.data).info)
  term = next(x for x in t.terms if x.name == "g_reg")
  assert term.network == "generator" and term.weight == 1e-4


class _BnAndTracked(nn.Module):
  """A generator whose state has batch-norm statistics and a tracked
  average that is not one (like spectral-norm vectors or StyleGAN's w_avg)."""

  @nn.compact
  def __call__(self, z, cond=None, train=True):
    tracked = self.variable("batch_stats", "w_avg", jnp.zeros,
                            (z.shape[-1],))
    if train:
      tracked.value = tracked.value + 1.0
    return nn.BatchNorm(use_running_average=not train, momentum=0.9)(
        z * 3.0 + 1.0) + tracked.value


def test_standing_stats_recompute_only_batch_norm_statistics():
  c = load_config("gan_2d", "ring,small")
  t = gan.GanTrainer(c, data.get_dataset(c.data).info)
  t.generator = _BnAndTracked()
  variables = t.generator.init(jax.random.key(0), jnp.zeros((4, 2)))
  state = dict(variables)
  params = state.pop("params")
  state = jax.tree.map(lambda v: v + 7.0, state)  # stale statistics
  key, n = jax.random.key(1), 4096
  stats = t.standing_stats(params, state, None, key, n)["batch_stats"]
  z = np.asarray(t.draw_noise(key, n)) * 3.0 + 1.0
  np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], z.mean(0),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(stats["BatchNorm_0"]["var"], z.var(0),
                             rtol=1e-3)
  np.testing.assert_array_equal(stats["w_avg"], state["batch_stats"]["w_avg"])


def test_frozen_network_keeps_its_loaded_weights():
  """A network without an optimizer (e.g. a perceptual-loss network) gets
  its weights from `load` and no optimizer state."""
  from gen_jax.trainers import base
  loaded = {"Dense_0": {"kernel": jnp.full((2, 3), 0.5),
                        "bias": jnp.zeros(3)}}
  import optax
  nets = {"g": Network(nn.Dense(3), (jnp.zeros((1, 2)),), optax.sgd(0.1),
                       ema=True),
          "frozen": Network(nn.Sequential([nn.Dense(3)]),
                            (jnp.zeros((1, 2)),), None,
                            load=lambda: loaded)}
  state = base.init_state(nets, jax.random.key(0))
  assert set(state.opt_state) == {"g"} and set(state.ema) == {"g"}
  np.testing.assert_array_equal(state.params["frozen"]["Dense_0"]["kernel"],
                                0.5)
