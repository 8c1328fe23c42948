"""Trainers: the pure functions of one model family, picked by config.trainer.

The protocol (declared networks, the generic `TrainState`, what evaluators
can ask for) is in `base.py`; each family registers itself in
`base.TRAINERS` with its config defaults, validation and `small` shrink.
Adding a family: see docs/design.md.
"""

from gen_jax.trainers import cyclegan, gan, pix2pix, srgan, vae  # noqa: F401
from gen_jax.trainers.base import TRAINERS, Network, Trainer, TrainState

__all__ = ["TRAINERS", "Network", "Trainer", "TrainState", "create"]


def create(config, info, constrain=lambda x: x) -> Trainer:
  """The trainer of `config.trainer` for a dataset with `info`."""
  return TRAINERS.get(config.trainer).create(config, info, constrain)
