"""SRGAN (Ledig et al. 2017): super-resolution with an SRResNet generator
G(low-res) and a critic D(high-res image), in two phases (`phase_starts`):

  phase 0, steps [0, pretrain_steps): SRResNet pre-training on the pixel MSE
    E|target - G(source)|^2 alone (the critic is not updated);
  phase 1, from pretrain_steps: adversarial fine-tuning,
    G: content + adv_weight * loss_G(D(G(source)))   (eq. 3, adv 1e-3)
    D: loss_D(D(target), D(G(source))).

The content loss is the MSE of VGG19 features (`models/vgg.py`, eq. 5,
weight `vgg_weight`; the paper's features rescaled by 1/12.75 are its 0.006)
from the user's weights `config.srgan.vgg_weights` (.npz), a frozen network
(optimizer None); without a file it is the pixel MSE, and one line on
stderr says so. Every phase logs the same metrics (0 for a term the phase
does not have), so a log window may span the boundary.

Networks: `generator` (`models/srresnet.py`), `discriminator`
(`SRDiscriminator`), and `vgg` (frozen) with weights. The scale (2 or 4) is
the dataset's: target size / source size.
"""

import sys

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import losses, objectives
from gen_jax.data.base import DatasetInfo
from gen_jax.errors import ConfigError
from gen_jax.models import srresnet, vgg
from gen_jax.trainers import base, translation
from gen_jax.trainers.base import Network, TrainState
from gen_jax.trainers.gan import two_adams
from gen_jax.validation import at_least, positive

G, D, VGG = translation.G, translation.D, "vgg"
PRETRAIN, ADVERSARIAL = 0, 1
METRICS = ("pixel", "content", "g_loss", "d_loss", "d_real", "d_fake")


def defaults(c: ml_collections.ConfigDict) -> None:
  m = c.model = ml_collections.ConfigDict()
  m.g_width = 64
  m.g_blocks = 16
  m.d_width = 64
  m.d_layers = 7
  m.d_dense = 1024
  s = c.srgan = ml_collections.ConfigDict()
  s.pretrain_steps = 1000   # phase 0 (pixel MSE) before adversarial steps
  s.loss = "non_saturating"
  s.adv_weight = 1e-3
  s.vgg_weights = ""        # .npz of VGG19 (models/vgg.py); '': pixel MSE
  s.vgg_layer = "conv5_4"   # phi_{5,4}, the paper's SRGAN-VGG54
  s.vgg_weight = 0.006
  c.optim = two_adams(1e-4, 0.9, 0.999)


def validate(config) -> None:
  m, s = config.model, config.srgan
  for f in ("g_width", "g_blocks", "d_width", "d_layers", "d_dense"):
    positive(f"config.model.{f}", m[f])
  at_least("config.srgan.pretrain_steps", s.pretrain_steps, 0,
           "0: adversarial from the start")
  losses.GAN_LOSSES.get(s.loss)
  at_least("config.srgan.adv_weight", s.adv_weight, 0)
  positive("config.srgan.vgg_weight", s.vgg_weight)
  if s.vgg_layer not in vgg.LAYERS:
    raise ConfigError(f"config.srgan.vgg_layer={s.vgg_layer!r} is not one "
                      f"of: {', '.join(vgg.LAYERS)}")
  for f in ("g_lr", "d_lr"):
    positive(f"config.optim.{f}", config.optim[f])


def scale_of(info: DatasetInfo) -> int:
  return info.example_shape[0] // info.extras["cond_shape"][0]


def validate_data(config, info: DatasetInfo) -> None:
  translation.check_paired(config, info)
  h, w, _ = info.example_shape
  ch, cw, _ = info.extras["cond_shape"]
  scale = scale_of(info)
  if (ch * scale, cw * scale) != (h, w) or scale not in srresnet.SCALES:
    raise ConfigError(
        f"config.trainer='srgan' upsamples by 2 or 4; {info.name!r} has "
        f"sources {(ch, cw)} and targets {(h, w)}")
  if h < 2 ** ((config.model.d_layers + 1) // 2):
    raise ConfigError(f"config.model.d_layers={config.model.d_layers} halves "
                      f"{h} px images to nothing; use fewer layers")


def small(c) -> None:
  c.model.g_width = c.model.d_width = 8
  c.model.g_blocks = 2
  c.model.d_layers = 3
  c.model.d_dense = 16
  c.srgan.pretrain_steps = min(c.srgan.pretrain_steps, 2)


def mse(a, b):
  return jnp.mean(jnp.square(a - b))


class SrganTrainer(translation.TranslationTrainer):

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    self.config, self.info, self.constrain = config, info, constrain
    m, s = config.model, config.srgan
    self.phase_starts = (s.pretrain_steps,)
    self.generator = srresnet.SRResNet(
        channels=info.example_shape[-1], scale=scale_of(info),
        width=m.g_width, num_blocks=m.g_blocks)
    self.discriminator = srresnet.SRDiscriminator(
        width=m.d_width, num_layers=m.d_layers, dense=m.d_dense)
    self.loss = losses.GAN_LOSSES.get(s.loss)
    self.networks = translation.generator_and_critic(
        config, info, self.generator, self.discriminator,
        conditional_critic=False)
    x = jnp.zeros((2, *info.example_shape), jnp.float32)
    if s.vgg_weights:
      self.vgg = vgg.VGGFeatures(layer=s.vgg_layer,
                                 value_range=tuple(info.value_range))
      vgg.load_npz(s.vgg_weights, s.vgg_layer)  # a bad file fails here
      self.networks[VGG] = Network(
          self.vgg, (x,), None,
          load=lambda: vgg.load_npz(s.vgg_weights, s.vgg_layer))
      content = lambda i: mse(self._features(i["vgg"], i["fake"]),
                              self._features(i["vgg"], i["target"]))
      content_weight = s.vgg_weight
    else:
      print("srgan: config.srgan.vgg_weights is empty: the content loss is "
            "the pixel MSE (no VGG19 features)", file=sys.stderr)
      content = lambda i: mse(i["fake"], i["target"])
      content_weight = 1.0
    pixel = objectives.Term("pixel", G, lambda i: mse(i["fake"],
                                                      i["target"]))
    self.terms = {
        PRETRAIN: [pixel],
        ADVERSARIAL: [
            objectives.Term("content", G, content, weight=content_weight),
            objectives.Term("g_loss", G, lambda i: self.loss.generator(
                i["fake_logits"]), weight=s.adv_weight),
            objectives.Term("pixel", G, lambda i: mse(i["fake"],
                                                      i["target"]),
                            weight=0.0),  # logged, not trained
            objectives.Term("d_loss", D, lambda i: self.loss.discriminator(
                i["real_logits"], i["fake_logits"]))],
    }
    self.d_terms = self.terms[ADVERSARIAL]

  def _features(self, params, x):
    return self.vgg.apply({"params": params}, x)

  def init(self, key: jax.Array) -> TrainState:
    return base.init_state(self.networks, key)

  def generate(self, params, g_state, cond, key, train: bool):
    del key  # SRResNet is deterministic
    if not train:
      return self.constrain(self.generator.apply(
          {"params": params, **g_state}, cond, train=False)), g_state
    out, new = self.generator.apply({"params": params, **g_state}, cond,
                                    train=True, mutable=list(g_state))
    return self.constrain(out), new

  def _g_objective(self, g_params, state, cond, target, phase):
    fake, g_state = self.generate(g_params, state.model_state[G], cond, None,
                                  train=True)
    inputs = {"fake": fake, "target": target,
              "vgg": state.params.get(VGG)}
    d_state = state.model_state[D]
    if phase == ADVERSARIAL:
      inputs["fake_logits"], d_state = self.critic(state.params[D], d_state,
                                                   fake)
    total, metrics = objectives.objective(self.terms[phase], G, inputs,
                                          state.step)
    return total, (g_state, d_state, metrics)

  def train_step(self, state: TrainState, batch, phase: int = PRETRAIN):
    """batch['x'] (1, B, H, W, C), batch['cond'] (1, B, H/s, W/s, C).
    Phase 0: one generator update on the pixel MSE; phase 1: one critic
    then one generator update."""
    target, cond = batch["x"][0], batch["cond"][0]
    metrics = {}
    if phase == ADVERSARIAL:
      fake, _ = self.generate(state.params[G], state.model_state[G], cond,
                              None, train=True)
      grads, (d_state, metrics) = jax.grad(self.d_objective, has_aux=True)(
          state.params[D], state.model_state[D], target,
          jax.lax.stop_gradient(fake), state.step)
      state = base.apply_gradients(self.networks[D], state, D, grads)
      state = state.replace(model_state={**state.model_state, D: d_state})
    grads, (g_state, d_state, g_metrics) = jax.grad(
        self._g_objective, has_aux=True)(state.params[G], state, cond,
                                         target, phase)
    state = base.apply_gradients(self.networks[G], state, G, grads)
    state = state.replace(step=state.step + 1, model_state={
        **state.model_state, G: g_state, D: d_state})
    metrics.update(g_metrics)
    zero = jnp.zeros((), jnp.float32)
    return state, {k: metrics.get(k, zero) for k in METRICS}


base.TRAINERS.add("srgan", base.TrainerSpec(
    create=SrganTrainer, defaults=defaults, validate=validate, small=small,
    validate_data=validate_data))
