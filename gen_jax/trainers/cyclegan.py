"""CycleGAN (Zhu et al. 2017): unpaired image-to-image translation between a
domain A (a translation dataset's `cond`) and a domain B (its `x`).

Networks: `g_ab` (A -> B) and `g_ba` (B -> A), ResNet translators
(`models/resnet_translator.py`), and `d_a`, `d_b`, PatchGANs
(`models/patchgan.py`) judging domain A and domain B images; each has its own
Adam (the paper: lr 2e-4, beta1 0.5; one Adam over both generators'
parameters is the same as one per generator, Adam being per parameter), with
the rate held for the first half of the run and decayed linearly to 0 over
the second (`config.optim.decay='constant_then_linear'`).

A step (the released code's `optimize_parameters`): translate a = cond and
b = x both ways, fake_b = g_ab(a), fake_a = g_ba(b); one update of both
generators on the sum of their terms (tag `generators`):

  adv_weight * [L_G(d_b(fake_b)) + L_G(d_a(fake_a))]          g_ab_adv, g_ba_adv
  + cycle_weight * [|g_ba(fake_b) - a|_1 + |g_ab(fake_a) - b|_1]  cycle_a, cycle_b
  + cycle_weight * identity_weight * [|g_ba(a) - a|_1 + |g_ab(b) - b|_1]
                                                           identity_a, identity_b

(|.|_1 the mean absolute error); then each discriminator once on its real
images against the fakes of this step's forward pass drawn through its image
pool (`image_pool.py`): L_D(d_a(a), d_a(pool_a(fake_a))) (term `d_a_loss`),
likewise `d_b_loss`. L_G, L_D: `config.cyclegan.loss`, least squares as in
the paper. This project's least-squares generator loss is halved,
0.5 E[(D - 1)^2] (losses.py), the paper's is E[(D - 1)^2]: `adv_weight` 2
reproduces the paper's balance against the cycle weight lambda = 10; its
discriminator loss (halved) is the released code's.

The pools live in `state.aux` (`pool_a`, `pool_b`), so they are
checkpointed and a resume is exact. They are global: one per
discriminator, replicated like the parameters, queried with the whole
(global) batch and one key, so a run gives the same numbers on 1 or 8
devices (the price: the step gathers a batch of fakes, B images, on every
device). With many seeds (`train.num_seeds`) each seed has its own pools
(the state is vmapped), as separate runs would.

What evaluators can ask of it: `sample(state, key, n, inputs)` with n
held-out examples `inputs` {'x': B images, 'cond': A images} returns the
translations 'x' = g_ab(cond) with their sources 'cond' and cycles 'cycle'
= g_ba(g_ab(cond)), and the other direction 'b' (the B images), 'b_to_a' =
g_ba(b), 'b_cycle' = g_ab(g_ba(b)) and, when the held-out domains are
labelled ('cond_label', 'label'), 'label' (of each A source: the digit its
translation should show) and 'b_label'; `held_out` sums the held-out cycle
errors (mean absolute error per image) `cycle_a` and `cycle_b`.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import image_pool, losses, objectives, schedules
from gen_jax.data.base import DatasetInfo
from gen_jax.errors import ConfigError
from gen_jax.models import patchgan
from gen_jax.models.resnet_translator import ResnetTranslator
from gen_jax.trainers import base, gan
from gen_jax.trainers.base import Network, TrainState
from gen_jax.validation import at_least, one_of, positive

G_AB, G_BA, D_A, D_B = "g_ab", "g_ba", "d_a", "d_b"
# The tag of the terms of the joint generator update (the cycle and identity
# terms train both generators).
GENERATORS = "generators"


def l1(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean absolute difference over every element (PyTorch's L1Loss)."""
  return jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))


# -- config: defaults, validation, small -------------------------------------

def model_config() -> ml_collections.ConfigDict:
  """config.model: the translators' and the PatchGANs' sizes (the paper's
  for 256 px images; 128 px: g_blocks 6)."""
  m = ml_collections.ConfigDict()
  m.g_width = 64      # ngf: the first c7s1 layer's width
  m.g_down = 2        # stride-2 downsamplings (and as many upsamplings)
  m.g_blocks = 9      # residual blocks at the lowest resolution
  m.d_width = 64      # ndf
  m.d_layers = 3      # PatchGAN stride-2 layers (3: the 70x70 PatchGAN)
  m.d_norm = "instance"
  return m


def cyclegan_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.loss = "least_squares"   # losses.GAN_LOSSES
  c.adv_weight = 2.0         # 2 x the halved LS loss: the paper's balance
  c.cycle_weight = 10.0      # lambda
  c.identity_weight = 0.5    # times cycle_weight (the paper: 0.5 lambda)
  c.pool_size = 50           # past fakes per discriminator (0: no pool)
  return c


def defaults(c: ml_collections.ConfigDict) -> None:
  c.model = model_config()
  c.cyclegan = cyclegan_config()
  c.optim = gan.two_adams(2e-4, 0.5, 0.999)
  c.optim.decay = "constant_then_linear"


def validate(config) -> None:
  m, c = config.model, config.cyclegan
  one_of("config.cyclegan.loss", c.loss, losses.GAN_LOSSES.names())
  for field in ("g_width", "d_width", "d_layers"):
    positive(f"config.model.{field}", m[field])
  at_least("config.model.g_down", m.g_down, 0)
  at_least("config.model.g_blocks", m.g_blocks, 0)
  one_of("config.model.d_norm", m.d_norm, patchgan.NORMS)
  for field in ("adv_weight", "cycle_weight", "identity_weight",
                "pool_size"):
    at_least(f"config.cyclegan.{field}", c[field], 0)
  for field in ("g_lr", "d_lr"):
    positive(f"config.optim.{field}", config.optim[field])


def validate_data(config, info: DatasetInfo) -> None:
  """An image-to-image dataset whose two domains have the same image size,
  which both networks' layer counts suit."""
  if "cond_shape" not in info.extras:
    raise ConfigError(
        f"config.trainer='cyclegan' needs an image-to-image dataset (batches "
        f"with a source image 'cond'); {info.name!r} has none (e.g. "
        "digit_domains)")
  m = config.model
  a, b = tuple(info.extras["cond_shape"]), tuple(info.example_shape)
  if a[:2] != b[:2]:
    raise ConfigError(f"config.trainer='cyclegan' translates between images "
                      f"of one size; {info.name!r} has A {a} and B {b}")
  size = min(b[:2])
  if size % 2 ** m.g_down or size // 2 ** m.g_down < 2:
    raise ConfigError(f"config.model.g_down={m.g_down}: {b[0]}x{b[1]} images "
                      f"must be divisible by 2^g_down with at least 2 px "
                      "left")
  if patchgan.output_size(size, m.d_layers) < 1:
    raise ConfigError(f"config.model.d_layers={m.d_layers} is too many for "
                      f"{size} px images (16 px: at most 2, 32 px: 3)")
  if config.cyclegan.identity_weight > 0 and a[2] != b[2]:
    raise ConfigError(f"config.cyclegan.identity_weight="
                      f"{config.cyclegan.identity_weight} needs domains with "
                      f"the same channels; {info.name!r} has A {a[2]} and B "
                      f"{b[2]} (set it to 0)")


def small(c) -> None:
  m = c.model
  m.g_width = m.d_width = 8
  m.g_blocks = 1
  m.d_layers = min(m.d_layers, 2)
  # Full after half a step of 16: every small run swaps fakes in the pools.
  c.cyclegan.pool_size = min(c.cyclegan.pool_size, 8)


# -- the trainer ---------------------------------------------------------------

class CycleGanTrainer(base.Trainer):
  """Pure functions of one CycleGAN configuration."""

  has_prior = False  # no samples without a source: see `sample`
  takes_inputs = True  # `sample` translates held-out examples
  sample_keys = ("x", "cond", "cycle", "b", "b_to_a", "b_cycle")

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    """`constrain` pins a batch-shaped array's sharding (the pools' output)."""
    self.config, self.info, self.constrain = config, info, constrain
    m, c = config.model, config.cyclegan
    self.loss = losses.GAN_LOSSES.get(c.loss)
    a_shape = tuple(info.extras["cond_shape"])
    b_shape = tuple(info.example_shape)
    self.shapes = {"a": a_shape, "b": b_shape}
    o, steps = config.optim, config.train.num_steps
    g_tx = lambda: schedules.adam(o.g_lr, o.g_b1, o.g_b2, o.decay, steps)
    d_tx = lambda: schedules.adam(o.d_lr, o.d_b1, o.d_b2, o.decay, steps)
    translator = lambda channels: ResnetTranslator(
        channels=channels, width=m.g_width, n_down=m.g_down,
        n_blocks=m.g_blocks)
    critic = lambda: patchgan.PatchGAN(width=m.d_width, n_layers=m.d_layers,
                                       norm=m.d_norm)
    a = jnp.zeros((2, *a_shape), jnp.float32)
    b = jnp.zeros((2, *b_shape), jnp.float32)
    kw = {"train": False}
    self.networks = {
        G_AB: Network(translator(b_shape[-1]), (a, None), g_tx(), kw),
        G_BA: Network(translator(a_shape[-1]), (b, None), g_tx(), kw),
        D_A: Network(critic(), (a, None), d_tx(), kw),
        D_B: Network(critic(), (b, None), d_tx(), kw),
    }
    self.identity = c.identity_weight > 0
    self.terms = self._terms()

  def _terms(self) -> list[objectives.Term]:
    c = self.config.cyclegan
    Term = objectives.Term
    terms = [
        Term("g_ab_adv", GENERATORS,
             lambda i: self.loss.generator(i["fake_b_logits"]),
             weight=c.adv_weight),
        Term("g_ba_adv", GENERATORS,
             lambda i: self.loss.generator(i["fake_a_logits"]),
             weight=c.adv_weight),
        Term("cycle_a", GENERATORS, lambda i: l1(i["cycle_a"], i["real_a"]),
             weight=c.cycle_weight),
        Term("cycle_b", GENERATORS, lambda i: l1(i["cycle_b"], i["real_b"]),
             weight=c.cycle_weight),
    ]
    if self.identity:
      w = c.cycle_weight * c.identity_weight
      terms += [
          Term("identity_a", GENERATORS,
               lambda i: l1(i["same_a"], i["real_a"]), weight=w),
          Term("identity_b", GENERATORS,
               lambda i: l1(i["same_b"], i["real_b"]), weight=w)]
    for d in (D_A, D_B):
      terms.append(Term(f"{d}_loss", d, lambda i: self.loss.discriminator(
          i["real_logits"], i["fake_logits"])))
    return terms

  def init(self, key: jax.Array) -> TrainState:
    size = self.config.cyclegan.pool_size
    return base.init_state(self.networks, key, aux={
        "pool_a": image_pool.init(size, self.shapes["a"]),
        "pool_b": image_pool.init(size, self.shapes["b"])})

  def apply(self, name: str, params, model_state, x, train: bool):
    """Network `name` on x; returns (output, new model state). Batch-norm
    statistics (a PatchGAN with d_norm='batch') update in training."""
    module = self.networks[name].module
    variables = {"params": params, **model_state}
    if train and model_state:
      return module.apply(variables, x, None, train=True,
                          mutable=list(model_state))
    return module.apply(variables, x, None, train=train), model_state

  # -- training -------------------------------------------------------------

  def g_objective(self, g_params, state: TrainState, real_a, real_b):
    """The generators' terms. Returns (objective, (fakes {'a', 'b'}, new
    model states, metrics))."""
    ms = dict(state.model_state)

    def run(name, x, params=None):
      p = g_params[name] if params is None else params
      y, ms[name] = self.apply(name, p, ms[name], x, train=True)
      return y

    fake_b = run(G_AB, real_a)
    fake_a = run(G_BA, real_b)
    inputs = {
        "real_a": real_a, "real_b": real_b,
        "cycle_a": run(G_BA, fake_b), "cycle_b": run(G_AB, fake_a),
        "fake_b_logits": run(D_B, fake_b, state.params[D_B]),
        "fake_a_logits": run(D_A, fake_a, state.params[D_A]),
    }
    if self.identity:
      inputs["same_a"] = run(G_BA, real_a)
      inputs["same_b"] = run(G_AB, real_b)
    total, metrics = objectives.objective(self.terms, GENERATORS, inputs,
                                          state.step)
    return total, ({"a": fake_a, "b": fake_b}, ms, metrics)

  def d_objective(self, name: str, params, d_state, real, fake, step):
    """Discriminator `name`'s terms on real and (pooled) fake images.
    Returns (objective, (new state, metrics))."""
    real_logits, d_state = self.apply(name, params, d_state, real, True)
    fake_logits, d_state = self.apply(name, params, d_state, fake, True)
    total, metrics = objectives.objective(
        self.terms, name, {"real_logits": real_logits,
                           "fake_logits": fake_logits}, step)
    metrics[f"{name}_real"] = jnp.mean(real_logits)
    metrics[f"{name}_fake"] = jnp.mean(fake_logits)
    return total, (d_state, metrics)

  def train_step(self, state: TrainState, batch: dict[str, jax.Array]):
    """batch['x'] (1, B, ...) domain B, batch['cond'] (1, B, ...) domain A.
    Returns (new state, scalar metrics)."""
    key = jax.random.fold_in(state.key, state.step)
    real_b, real_a = batch["x"][0], batch["cond"][0]
    g_params = {n: state.params[n] for n in (G_AB, G_BA)}
    grads, (fakes, model_state, metrics) = jax.grad(
        self.g_objective, has_aux=True)(g_params, state, real_a, real_b)
    for n in (G_AB, G_BA):
      state = base.apply_gradients(self.networks[n], state, n, grads[n])
    state = state.replace(model_state=model_state)
    aux = dict(state.aux)
    for i, (d, domain, real) in enumerate(((D_A, "a", real_a),
                                           (D_B, "b", real_b))):
      pool = f"pool_{domain}"
      aux[pool], fake = image_pool.query(
          state.aux[pool], jax.lax.stop_gradient(fakes[domain]),
          jax.random.fold_in(key, i))
      d_grads, (d_state, m) = jax.grad(
          functools.partial(self.d_objective, d), has_aux=True)(
              state.params[d], state.model_state[d], real,
              self.constrain(fake), state.step)
      state = base.apply_gradients(self.networks[d], state, d, d_grads)
      state = state.replace(model_state={**state.model_state, d: d_state})
      metrics.update(m)
    return state.replace(step=state.step + 1, aux=aux), metrics

  # -- what evaluators can ask for ----------------------------------------------

  def run_translator(self, state: TrainState, name: str, x: jax.Array):
    return self.apply(name, state.params[name], state.model_state[name], x,
                      train=False)[0]

  def sample(self, state: TrainState, key: jax.Array, n: int,
             inputs: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Translations of n held-out examples `inputs` {'x': (n, ...) B
    images, 'cond': (n, ...) A images} (see the module docstring)."""
    del key  # the translators are deterministic
    a, b = inputs["cond"][:n], inputs["x"][:n]
    ab = self.run_translator(state, G_AB, a)
    ba = self.run_translator(state, G_BA, b)
    out = {"x": ab, "cond": a, "cycle": self.run_translator(state, G_BA, ab),
           "b": b, "b_to_a": ba,
           "b_cycle": self.run_translator(state, G_AB, ba)}
    if "cond_label" in inputs:  # labelled domains: what each should show
      out["label"], out["b_label"] = inputs["cond_label"][:n], inputs[
          "label"][:n]
    return out

  def held_out(self, state: TrainState, batch: dict[str, jax.Array]):
    """Sums over the batch's real examples of each image's cycle error
    (mean absolute error, in the data's units), and their count."""
    a, b, mask = batch["cond"], batch["x"], batch["mask"]
    err = lambda r, x: jnp.mean(jnp.abs(r - x), axis=tuple(range(1, x.ndim)))
    aba = self.run_translator(state, G_BA, self.run_translator(state, G_AB, a))
    bab = self.run_translator(state, G_AB, self.run_translator(state, G_BA, b))
    return {"cycle_a": jnp.sum(err(aba, a) * mask),
            "cycle_b": jnp.sum(err(bab, b) * mask), "count": jnp.sum(mask)}


base.TRAINERS.add("cyclegan", base.TrainerSpec(
    create=CycleGanTrainer, defaults=defaults, validate=validate, small=small,
    validate_data=validate_data))
