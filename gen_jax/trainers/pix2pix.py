"""Pix2Pix (Isola et al. 2017): a U-Net generator G(source) and a PatchGAN
critic D(image, source) on (input, output) pairs, trained with

  D: 1/2 [loss_D(D(target, source), D(G(source), source))]  (the paper
     halves D's objective to slow it down relative to G)
  G: adv_weight * loss_G(D(G(source), source))
     + l1_weight * E|target - G(source)|_1                  (eq. 4, lambda 100)

one critic update then one generator update per step (G against the updated
critic, as the authors' code). The adversarial loss is any of
`losses.GAN_LOSSES` (`config.pix2pix.loss`: the paper's non_saturating, or
least_squares). Dropout in the U-Net is the only noise; the paper keeps it
at test time (`config.pix2pix.test_dropout`). `adv_weight` 0 is the
L1-only U-Net baseline of the paper's table 1 (configs/pix2pix.py:l1_only):
the critic is still trained, so its d_loss is logged, but G ignores it.

Networks: `generator` (`models/unet.py`), `discriminator`
(`models/patchgan.py`). Terms: `d_loss` (D), `g_loss` and `l1` (G).
"""

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import losses, objectives
from gen_jax.data.base import DatasetInfo
from gen_jax.errors import ConfigError
from gen_jax.models import patchgan, unet
from gen_jax.trainers import base, translation
from gen_jax.trainers.base import TrainState
from gen_jax.trainers.gan import two_adams
from gen_jax.validation import at_least, one_of, positive

G, D = translation.G, translation.D


def defaults(c: ml_collections.ConfigDict) -> None:
  m = c.model = ml_collections.ConfigDict()
  m.g_width = 64      # ngf
  m.d_width = 64      # ndf
  m.depth = 0         # U-Net encoder layers; 0: log2(image size) (to 1x1)
  m.d_layers = 3      # PatchGAN n_layers (3: 70x70 at 256 px)
  m.norm = "instance"     # generator: instance | batch
  m.d_norm = "instance"   # critic: instance | batch | none
  m.dropout = 0.5
  m.num_dropout = 3   # decoder layers with dropout (innermost first)
  p = c.pix2pix = ml_collections.ConfigDict()
  p.loss = "non_saturating"
  p.adv_weight = 1.0  # 0: the L1-only U-Net
  p.l1_weight = 100.0
  p.test_dropout = True
  c.optim = two_adams(2e-4, 0.5, 0.999)


def validate(config) -> None:
  m, p = config.model, config.pix2pix
  one_of("config.model.norm", m.norm, unet.NORMS)
  one_of("config.model.d_norm", m.d_norm, patchgan.NORMS)
  for f in ("g_width", "d_width", "d_layers"):
    positive(f"config.model.{f}", m[f])
  at_least("config.model.depth", m.depth, 0, "0: fitted to the image size")
  at_least("config.model.num_dropout", m.num_dropout, 0)
  if not 0.0 <= m.dropout < 1.0:
    raise ConfigError(f"config.model.dropout={m.dropout!r} must be in [0, 1)")
  losses.GAN_LOSSES.get(p.loss)
  at_least("config.pix2pix.adv_weight", p.adv_weight, 0, "0: L1 only")
  at_least("config.pix2pix.l1_weight", p.l1_weight, 0)
  for f in ("g_lr", "d_lr"):
    positive(f"config.optim.{f}", config.optim[f])


def validate_data(config, info: DatasetInfo) -> None:
  translation.check_paired(config, info)
  h, w, _ = info.example_shape
  if tuple(info.extras["cond_shape"][:2]) != (h, w):
    raise ConfigError(
        f"config.trainer='pix2pix' maps a source to a target of the same "
        f"size; {info.name!r} has sources {info.extras['cond_shape'][:2]} and "
        f"targets {(h, w)} (super-resolution: configs/srgan.py)")
  depth = config.model.depth or unet.depth_for(h)
  if h % 2 ** depth or w % 2 ** depth:
    raise ConfigError(f"config.model.depth={depth}: the image size {(h, w)} "
                      f"must be divisible by {2 ** depth}")
  if patchgan.output_size(min(h, w), config.model.d_layers) < 1:
    raise ConfigError(
        f"config.model.d_layers={config.model.d_layers} is too deep for "
        f"{h}x{w} images (a {2 ** config.model.d_layers * 3} px image at "
        "least); 16 px takes at most 2, 32 px 3")


def small(c) -> None:
  c.model.g_width = c.model.d_width = 8
  c.model.d_layers = min(c.model.d_layers, 2)


class Pix2PixTrainer(translation.TranslationTrainer):

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    self.config, self.info, self.constrain = config, info, constrain
    m, p = config.model, config.pix2pix
    h, _, c = info.example_shape
    self.generator = unet.UNet(
        channels=c, width=m.g_width, depth=m.depth or unet.depth_for(h),
        norm=m.norm, dropout=m.dropout, num_dropout=m.num_dropout)
    self.discriminator = patchgan.PatchGAN(width=m.d_width,
                                           n_layers=m.d_layers,
                                           norm=m.d_norm)
    self.loss = losses.GAN_LOSSES.get(p.loss)
    self.networks = translation.generator_and_critic(
        config, info, self.generator, self.discriminator,
        conditional_critic=True)
    self.terms = [
        objectives.Term("d_loss", D, lambda i: self.loss.discriminator(
            i["real_logits"], i["fake_logits"]), weight=0.5),
        objectives.Term("g_loss", G, lambda i: self.loss.generator(
            i["fake_logits"]), weight=p.adv_weight),
        objectives.Term("l1", G, lambda i: jnp.mean(jnp.abs(
            i["fake"] - i["target"])), weight=p.l1_weight),
    ]
    self.d_terms = self.terms

  def init(self, key: jax.Array) -> TrainState:
    return base.init_state(self.networks, key)

  def generate(self, params, g_state, cond, key, train: bool):
    drop = train or self.config.pix2pix.test_dropout
    variables = {"params": params, **g_state}
    if not train:
      out = self.generator.apply(variables, cond, train=False, dropout=drop,
                                 rngs={"dropout": key})
      return self.constrain(out), g_state
    out, new = self.generator.apply(variables, cond, train=True,
                                    rngs={"dropout": key},
                                    mutable=list(g_state))
    return self.constrain(out), new

  def _g_objective(self, g_params, state, cond, target, key):
    fake, g_state = self.generate(g_params, state.model_state[G], cond, key,
                                  train=True)
    logits, d_state = self.critic(state.params[D], state.model_state[D],
                                  fake, cond)
    total, metrics = objectives.objective(
        self.terms, G, {"fake_logits": logits, "fake": fake,
                        "target": target}, state.step)
    return total, (g_state, d_state, metrics)

  def train_step(self, state: TrainState, batch):
    """batch['x'], batch['cond']: (1, B, ...). One D then one G update."""
    key = jax.random.fold_in(state.key, state.step)
    target, cond = batch["x"][0], batch["cond"][0]
    fake, _ = self.generate(state.params[G], state.model_state[G], cond, key,
                            train=True)
    grads, (d_state, d_metrics) = jax.grad(self.d_objective, has_aux=True)(
        state.params[D], state.model_state[D], target,
        jax.lax.stop_gradient(fake), state.step, cond)
    state = base.apply_gradients(self.networks[D], state, D, grads)
    state = state.replace(model_state={**state.model_state, D: d_state})
    # The same dropout draw as the critic's fakes: G is judged on them.
    grads, (g_state, d_state, g_metrics) = jax.grad(
        self._g_objective, has_aux=True)(state.params[G], state, cond, target,
                                         key)
    state = base.apply_gradients(self.networks[G], state, G, grads)
    state = state.replace(step=state.step + 1, model_state={
        **state.model_state, G: g_state, D: d_state})
    return state, {**d_metrics, **g_metrics}


base.TRAINERS.add("pix2pix", base.TrainerSpec(
    create=Pix2PixTrainer, defaults=defaults, validate=validate, small=small,
    validate_data=validate_data))
