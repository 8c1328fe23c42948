"""Trainers: the pure functions of one model family, picked by config.trainer.

A trainer has `init(key) -> state`, `train_step(state, batch) -> (state,
metrics)` (batch['x'] of shape (batches_per_step, B, ...)), `sample(state,
key, n)`, `eval_metrics(samples, real)`, and `batches_per_step`; the VAE trainer also
has `eval_batch` for held-out metrics. `train.py` jits and shards them.
"""

from gen_jax.trainers.gan import GanTrainer
from gen_jax.trainers.vae import VaeTrainer

TRAINER_CLASSES = {"gan": GanTrainer, "vae": VaeTrainer}


def create(config, info, constrain=lambda x: x):
  return TRAINER_CLASSES[config.trainer](config, info, constrain)
