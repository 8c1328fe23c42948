"""The VAE objective against hand-computed and independent values."""

import jax
import numpy as np
from scipy import stats

from gen_jax import elbo


def test_reparameterization_example():
  mu = np.array([0.5, -0.2])
  sigma = np.array([0.1, 0.3])
  eps = np.array([0.5, -1.0])
  z = elbo.reparameterize(mu, np.log(sigma), eps)
  np.testing.assert_allclose(z, [0.55, -0.5], atol=1e-6)


def test_reparameterization_gradients():
  # dz/dmu = 1, dz/dlog_sigma = sigma * eps.
  g_mu, g_ls = jax.grad(lambda m, s: elbo.reparameterize(m, s, 0.5).sum(),
                        argnums=(0, 1))(0.5, np.log(0.1))
  np.testing.assert_allclose([g_mu, g_ls], [1.0, 0.05], rtol=1e-6)


def test_gaussian_kl_against_closed_form_by_hand():
  # KL(N(0.5, 0.1^2) || N(0, 1)) = 0.5 (0.25 + 0.01 - 1 - log 0.01)
  # KL(N(-0.2, 0.3^2) || N(0, 1)) = 0.5 (0.04 + 0.09 - 1 - log 0.09)
  expected = 0.5 * (0.25 + 0.01 - 1 - np.log(0.01)) + 0.5 * (
      0.04 + 0.09 - 1 - np.log(0.09))
  kl = elbo.gaussian_kl(np.array([[0.5, -0.2]]), np.log([[0.1, 0.3]]))
  np.testing.assert_allclose(kl, [expected], rtol=1e-5)


def test_gaussian_kl_against_monte_carlo():
  mu, sigma = 0.7, 0.4
  z = np.random.default_rng(0).normal(mu, sigma, size=400_000)
  mc = np.mean(stats.norm.logpdf(z, mu, sigma) - stats.norm.logpdf(z))
  kl = elbo.gaussian_kl(np.array([[mu]]), np.log([[sigma]]))
  np.testing.assert_allclose(kl, [mc], atol=5e-3)


def test_bernoulli_log_likelihood_against_scipy():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(3, 4, 4, 1)).astype(np.float32)
  x = (rng.random((3, 4, 4, 1)) < 0.5).astype(np.float32)
  p = 1 / (1 + np.exp(-logits))
  expected = stats.bernoulli.logpmf(x, p).reshape(3, -1).sum(1)
  got = elbo.LIKELIHOODS.get("bernoulli")(logits, x)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gaussian_log_likelihood_against_scipy():
  rng = np.random.default_rng(2)
  mean = rng.normal(size=(2, 3, 3, 1)).astype(np.float32)
  log_sigma = rng.normal(scale=0.3, size=(2, 3, 3, 1)).astype(np.float32)
  x = rng.normal(size=(2, 3, 3, 1)).astype(np.float32)
  expected = stats.norm.logpdf(x, mean, np.exp(log_sigma)).reshape(2, -1).sum(1)
  got = elbo.LIKELIHOODS.get("gaussian")(
      np.concatenate([mean, log_sigma], -1), x)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_negative_elbo():
  np.testing.assert_allclose(elbo.negative_elbo(np.array([-90.0]),
                                                np.array([12.0])), [102.0])
