"""Held-out metrics a trainer sums over the eval split (the VAE's -ELBO,
reconstruction term and KL, in nats per example)."""

from gen_jax.evaluators.base import Context, per_run, register


@register("held_out", "held_out", lambda ctx: ctx.has_held_out)
@per_run
def held_out(ctx: Context, run: dict) -> dict[str, float]:
  del ctx
  return {k: float(v) for k, v in run.items()}
