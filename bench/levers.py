"""A/B timings of speed levers on gen_jax's GAN step (interleaved medians).

  PYTHONPATH=. python bench/levers.py --case dcgan64 [--variants base,bf16]

Each variant is the real GanTrainer with one change, defined here so that the
core stays as it is until a lever proves worth it:
  base     configs as they are (with --upsample);
  xla_up_grad  the generator's sub-pixel layers differentiated by XLA
           instead of conv2x.sub_pixel_2x's custom VJP;
  scan     the critic updates in a lax.scan (one compiled copy) instead of
           the trainer's unrolled Python loop;
  lax_d    the critic's convolutions with XLA's own gradient (nn.Conv's)
           instead of DownConv2x's sub-pixel input gradient;
  bf16     generator and critic compute in bfloat16 (params, BN and losses
           stay float32): an opt-in, not the same numbers;
  joint_d  the critic's real and fake passes as one vmapped call, so each
           convolution runs once on 2B examples; batch-norm statistics stay
           per half (vmap), and the running averages are combined exactly as
           two sequential updates would leave them;
  reuse_g  (n_critic 1) the PyTorch example's update: the generator runs once,
           its fake feeds the critic update and, through a stored VJP, the
           generator update (same z for both, unlike the trainer's fresh z).
"""

import argparse
from unittest import mock

import jax
import jax.numpy as jnp
import optax

from bench import timing, train_steps
from gen_jax.models import conv2x, upsample
from gen_jax.trainers import gan


class Bf16(gan.GanTrainer):
  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.generator = self.generator.clone(dtype=jnp.bfloat16)
    self.discriminator = self.discriminator.clone(dtype=jnp.bfloat16)


def _sequential_ema(before, first, second, momentum: float = 0.9):
  """Running averages after two updates from `before`, given each update's
  result when applied alone: m (m b + (1-m) u1) + (1-m) u2."""
  return jax.tree.map(lambda b, s1, s2: momentum * s1 + s2 - momentum * b,
                      before, first, second)


class JointD(gan.GanTrainer):
  def _critic_update(self, state, real, key):
    kz, kp = jax.random.split(key)
    fake, _ = self.generate(state.g_params, state.g_state,
                            self.draw_noise(kz, real.shape[0]), train=True)
    fake = jax.lax.stop_gradient(fake)
    weight = self.config.gan.penalty_weight

    def loss_fn(d_params):
      logits, states = jax.vmap(
          lambda x: self.critic(d_params, state.d_state, x))(
              jnp.stack([real, fake]))
      first = jax.tree.map(lambda s: s[0], states)
      second = jax.tree.map(lambda s: s[1], states)
      d_state = _sequential_ema(state.d_state, first, second)
      real_logits, fake_logits = logits
      loss = self.loss.discriminator(real_logits, fake_logits)
      critic = lambda x: self.critic(d_params, d_state, x)[0]
      penalty = self.penalty(critic, real, fake, kp)
      metrics = {"d_loss": loss, "penalty": penalty,
                 "d_real": jnp.mean(real_logits),
                 "d_fake": jnp.mean(fake_logits)}
      return loss + weight * penalty, (d_state, metrics)

    grads, (d_state, metrics) = jax.grad(loss_fn, has_aux=True)(
        state.d_params)
    updates, d_opt = self.d_tx.update(grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    return state.replace(d_params=d_params, d_state=d_state,
                         d_opt=d_opt), metrics


class ReuseG(gan.GanTrainer):
  def train_step(self, state, batch):
    assert self.batches_per_step == 1
    key = jax.random.fold_in(state.key, state.step)
    real = batch["x"][0]
    z = self.draw_noise(jax.random.fold_in(key, 0), real.shape[0])
    fake, g_vjp, g_state = jax.vjp(
        lambda p: self.generate(p, state.g_state, z, train=True),
        state.g_params, has_aux=True)

    def d_loss(d_params):
      real_logits, d_state = self.critic(d_params, state.d_state, real)
      fake_logits, d_state = self.critic(d_params, d_state,
                                         jax.lax.stop_gradient(fake))
      return self.loss.discriminator(real_logits, fake_logits), d_state

    (loss, d_state), d_grads = jax.value_and_grad(d_loss, has_aux=True)(
        state.d_params)
    updates, d_opt = self.d_tx.update(d_grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)

    def g_loss(x):
      logits, new_d_state = self.critic(d_params, d_state, x)
      return self.loss.generator(logits), new_d_state

    (gl, d_state), dfake = jax.value_and_grad(g_loss, has_aux=True)(fake)
    g_grads, = g_vjp(dfake)
    updates, g_opt = self.g_tx.update(g_grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    state = state.replace(step=state.step + 1, g_params=g_params,
                          g_state=g_state, d_params=d_params, d_state=d_state,
                          g_opt=g_opt, d_opt=d_opt, ema_params=g_params)
    return state, {"d_loss": loss, "g_loss": gl}


class XlaSubPixelGrad(gan.GanTrainer):
  def train_step(self, state, batch):
    with mock.patch.object(upsample, "sub_pixel_2x", conv2x.sub_pixel_phases):
      return super().train_step(state, batch)


class ScanCritic(gan.GanTrainer):
  def train_step(self, state, batch):
    key = jax.random.fold_in(state.key, state.step)
    critic_keys = jax.random.split(jax.random.fold_in(key, 0),
                                   self.batches_per_step)
    state, d_metrics = jax.lax.scan(
        lambda s, xs: self._critic_update(s, *xs), state,
        (batch["x"], critic_keys))
    state, g_metrics = self._generator_update(state, jax.random.fold_in(key, 1))
    metrics = {k: v[-1] for k, v in d_metrics.items()}
    metrics.update(g_metrics)
    return state.replace(step=state.step + 1), metrics


class LaxD(gan.GanTrainer):
  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.discriminator = self.discriminator.clone(downsample="conv")


VARIANTS = {"base": gan.GanTrainer, "xla_up_grad": XlaSubPixelGrad,
            "scan": ScanCritic, "lax_d": LaxD, "bf16": Bf16,
            "joint_d": JointD, "reuse_g": ReuseG}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--case", default="dcgan64")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--upsample", default="sub_pixel")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"load before: {timing.load_average()}")
  case = train_steps.CASES[args.case]
  fns, compile_s = {}, {}
  for name in args.variants.split(","):
    run, _, compile_s[name], _, _ = train_steps.gen_jax_step(
        case, args.upsample, trainer_class=VARIANTS[name])
    fns[name] = run
  cpu: dict[str, list[float]] = {}
  times = timing.interleaved(fns, args.repeats, cpu=cpu)
  print(f"\n| {args.case} variant | wall ms/step (min-max) | vs first | "
        "CPU ms/step | vs first | compile s |")
  print("|---|---|---|---|---|---|")
  first = next(iter(times))
  base, base_cpu = timing.median_ms(times[first]), timing.median_ms(cpu[first])
  for name, t in times.items():
    c = timing.median_ms(cpu[name])
    print(f"| {name} | {timing.median_ms(t):.0f} ({timing.spread_ms(t)}) | "
          f"{timing.median_ms(t) / base:.2f} | {c:.0f} | {c / base_cpu:.2f} | "
          f"{compile_s[name]:.1f} |")
  print(f"load after: {timing.load_average()}")


if __name__ == "__main__":
  main()
