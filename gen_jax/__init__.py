"""gen_jax: generative models (VAE, DCGAN, WGAN-GP, ...) in JAX and Flax Linen."""

__version__ = "0.1.0"
