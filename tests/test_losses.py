"""Every GAN loss against its formula on fixed logits, computed in NumPy."""

import numpy as np
import pytest

from gen_jax import losses

REAL = np.array([2.0, -0.5, 0.3, 1.2], np.float32)
FAKE = np.array([-1.0, 0.4, -2.5, 0.0], np.float32)


def sigmoid(v):
  return 1.0 / (1.0 + np.exp(-v))


# name -> (D loss, G loss) written from the papers' formulas.
EXPECTED = {
    "minimax": (
        -np.mean(np.log(sigmoid(REAL))) - np.mean(np.log(1 - sigmoid(FAKE))),
        np.mean(np.log(1 - sigmoid(FAKE)))),
    "non_saturating": (
        -np.mean(np.log(sigmoid(REAL))) - np.mean(np.log(1 - sigmoid(FAKE))),
        -np.mean(np.log(sigmoid(FAKE)))),
    "wasserstein": (np.mean(FAKE) - np.mean(REAL), -np.mean(FAKE)),
    "hinge": (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)),
              -np.mean(FAKE)),
    "least_squares": (0.5 * np.mean((REAL - 1) ** 2) + 0.5 * np.mean(FAKE ** 2),
                      0.5 * np.mean((FAKE - 1) ** 2)),
}


def test_every_registered_loss_is_checked():
  assert sorted(EXPECTED) == losses.GAN_LOSSES.names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_matches_formula(name):
  loss = losses.GAN_LOSSES.get(name)
  d_expected, g_expected = EXPECTED[name]
  np.testing.assert_allclose(loss.discriminator(REAL, FAKE), d_expected,
                             rtol=1e-5)
  np.testing.assert_allclose(loss.generator(FAKE), g_expected, rtol=1e-5)


def test_hand_computed_hinge():
  # relu(1-2)=0, relu(1.5)=1.5, relu(0.7)=0.7, relu(-0.2)=0 -> 2.2/4 = 0.55;
  # relu(0)=0, relu(1.4)=1.4, relu(-1.5)=0, relu(1)=1 -> 2.4/4 = 0.6.
  np.testing.assert_allclose(
      losses.GAN_LOSSES.get("hinge").discriminator(REAL, FAKE), 1.15,
      rtol=1e-6)


def test_unknown_loss_lists_allowed_names():
  from gen_jax.errors import ConfigError
  with pytest.raises(ConfigError, match="config.gan.loss='foo' is not one of: "
                     "hinge, least_squares, minimax"):
    losses.GAN_LOSSES.get("foo")
