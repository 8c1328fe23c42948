"""The autoencoder family: the importance-weighted likelihood against a
closed form, the denoising AE against its corrupted inputs, the KL warm-up,
slerp, and bad input."""

import jax
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from conftest import load_config
from gen_jax import elbo, train
from gen_jax.errors import ConfigError
from gen_jax.evaluators import latent


def test_log_importance_weights_against_scipy():
  rng = np.random.default_rng(0)
  z, mu = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 1, 2))
  ls, ll = 0.3 * rng.normal(size=(3, 1, 2)), rng.normal(size=(3, 4))
  expected = (ll + stats.norm.logpdf(z).sum(-1)
              - stats.norm.logpdf(z, mu, np.exp(ls)).sum(-1))
  np.testing.assert_allclose(elbo.log_importance_weights(ll, z, mu, ls),
                             expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(elbo.iwae_bound(expected),
                             logsumexp(expected, -1) - np.log(4), rtol=1e-5)


def _linear_gaussian(config, x, rng):
  """Parameters making the VAE the linear-Gaussian model p(z) = N(0, I),
  p(x|z) = N(Wz + b, s^2 I), with q(z|x) the exact posterior's mean and
  a too-wide diagonal of its covariance; and the exact log p(x) (numpy)."""
  d, n_pix = config.model.latent_dim, x[0].size
  w = 0.3 * rng.normal(size=(n_pix, d))
  b = x.reshape(len(x), -1).mean(0)
  s = 0.4
  cov_x = w @ w.T + s ** 2 * np.eye(n_pix)
  exact = stats.multivariate_normal(b, cov_x).logpdf(x.reshape(len(x), -1))
  post_cov = np.linalg.inv(np.eye(d) + w.T @ w / s ** 2)
  a = post_cov @ w.T / s ** 2                       # mean = a (x - b)
  dec_k = np.zeros((d, 2 * n_pix))
  dec_k[:, 0::2] = w.T                              # channel 0: the mean
  dec_b = np.zeros(2 * n_pix)
  dec_b[0::2], dec_b[1::2] = b, np.log(s)           # channel 1: log s
  log_sigma = 0.5 * np.log(np.diag(post_cov)) + 0.7  # 2x too wide
  params = {"encoder": {
      "Dense_0": {"kernel": a.T, "bias": -a @ b},
      "Dense_1": {"kernel": np.zeros((n_pix, d)), "bias": log_sigma}},
      "decoder": {"Dense_0": {"kernel": dec_k, "bias": dec_b}}}
  return jax.tree.map(lambda v: np.asarray(v, np.float32), params), exact


def test_importance_weighted_nll_matches_a_linear_gaussian_closed_form():
  config = load_config("vae", "small")
  config.model.mlp.hidden = ()     # one Dense each way: linear
  config.model.likelihood = "gaussian"
  config.model.latent_dim = 3
  s = train.setup(config)
  state = s.init(s.key)
  x = s.evaluation.split()["x"][:24]
  params, exact = _linear_gaussian(config, x, np.random.default_rng(1))
  assert jax.tree.structure(params) == jax.tree.structure(
      jax.tree.map(np.asarray, state.params["vae"]))
  state = state.replace(params={"vae": params})
  codec = s.evaluation._codecs(state)[0]
  nll, mc_nelbo = latent.importance_weighted_nll(
      codec, x, k=5000, chunk=1000, key=jax.random.key(0), batch=24)
  # Monte-Carlo error of each estimate, from its own weights.
  lw = codec.log_weights(x, jax.random.key(1), 5000).astype(np.float64)
  w = np.exp(lw - lw.max(1, keepdims=True))
  se = w.std(1) / w.mean(1) / np.sqrt(5000)   # delta method on log mean w
  np.testing.assert_array_less(np.abs(nll + exact), 5 * se + 1e-3)
  # -ELBO over the same 5000 samples is well above: q is not the posterior,
  # and the IWAE estimate is the tighter bound.
  gap = mc_nelbo + exact
  assert np.all(gap > 1.0)
  assert np.all(nll <= mc_nelbo)
  # The trainer's held-out -ELBO (analytic KL, one sample of z): the IWAE
  # NLL is never above it by more than that sample's Monte-Carlo error.
  held = jax.device_get(jax.jit(s.trainer.held_out)(state, {
      "x": x, "mask": np.ones(len(x), np.float32)}))
  nelbo = held["neg_elbo"] / len(x)
  mc_error = 3 * np.std(lw, 1).mean() / np.sqrt(len(x))
  assert nll.mean() <= nelbo + mc_error
  assert abs(nelbo - mc_nelbo.mean()) < mc_error


def _train(config, steps):
  config.train.num_steps = steps
  s = train.setup(config)
  state, stream = s.init(s.key), s.stream()
  for i in range(steps):
    state, metrics = s.train_step(state, s.batch(stream))
    if i % 10 == 0:  # as the loop does: a host sync bounds queued steps
      jax.block_until_ready(metrics)
  return s, state, jax.device_get(metrics)


@pytest.mark.parametrize("kind,level", [("gaussian", 0.5)])
def test_denoising_reconstructions_beat_the_corrupted_inputs(kind, level):
  config = load_config("autoencoder", "denoising,small")
  config.model.mlp.hidden, config.model.latent_dim = (128,), 16
  config.ae.corruption, config.ae.corruption_level = kind, level
  config.data.batch_size = 64
  s, state, _ = _train(config, 400)
  codec = s.evaluation._codecs(state)[0]
  x = s.evaluation.split()["x"]
  x_in = codec.corrupt(x)
  rec = codec.decode(codec.encode(x_in)["mean"])
  corrupted = np.mean((x_in - x) ** 2)
  assert np.mean(np.abs(x_in - x) > 1e-6) > level / 2   # it did corrupt
  assert np.mean((rec - x) ** 2) < 0.6 * corrupted


def test_kl_warm_up_is_linear_then_constant():
  config = load_config("vae", "digits,beta,small")
  config.ae.kl_weight, config.ae.kl_warmup_steps = 4.0, 100
  s = train.setup(config)
  w = [float(s.trainer.kl_weight(np.int32(t))) for t in (0, 25, 100, 400)]
  np.testing.assert_allclose(w, [0.0, 1.0, 4.0, 4.0], rtol=1e-6)


def test_iwae_objective_trains_and_reports_both_bounds():
  config = load_config("vae", "iwae,small")
  _, _, metrics = _train(config, 3)
  # log mean w >= mean log w for every example: Jensen.
  assert metrics["neg_iwae"] <= metrics["neg_elbo"] + 1e-4


def test_slerp_by_hand():
  a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
  p = latent.slerp(a, b, np.array([0.0, 0.5, 1.0]))[0]
  # omega = 90 degrees: at t = 1/2 both weights are sin(45)/sin(90).
  np.testing.assert_allclose(p, [[1, 0], [np.sqrt(.5), 2 * np.sqrt(.5)],
                                 [0, 2]], atol=1e-12)


def test_traversal_order_is_by_kl():
  codes = {"mean": np.array([[0.0, 2.0, 0.1], [0.0, -2.0, 0.1]]),
           "log_sigma": np.zeros((2, 3))}
  # KL per dimension: 0, 2, 0.005.
  assert list(latent.dimension_order(codes)) == [1, 2, 0]


@pytest.mark.parametrize("name,arg,field,value,message", [
    ("vae", "small", "ae.iwae_k", 0, "config.ae.iwae_k=0 must be >= 1"),
    ("autoencoder", "denoising,small", "ae.corruption_level", 1.5,
     "config.ae.corruption_level=1.5 is not in (0, 1]"),
    ("autoencoder", "small", "ae.corruption", "blur",
     "config.ae.corruption='blur' is not one of"),
    ("autoencoder", "small", "evals", ("samples",),
     "config.evals: 'samples' needs samples from a prior"),
    ("autoencoder", "small", "model.likelihood", "mse", None),
    ("vae", "small", "model.likelihood", "mse",
     "config.model.likelihood='mse' is unnormalised"),
    ("vae", "swiss_roll,small", "evals", ("arithmetic",),
     "config.evals: 'arithmetic' needs class labels"),
])
def test_bad_input_is_one_config_error(name, arg, field, value, message):
  config = load_config(name, arg)
  group, _, leaf = field.rpartition(".")
  (config[group] if group else config)[leaf] = value
  if message is None:
    train.setup(config)  # allowed
    return
  with pytest.raises(ConfigError) as e:
    train.setup(config)
  assert message in str(e.value) and "\n" not in str(e.value)
