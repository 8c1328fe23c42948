"""The PyTorch references of bench/ (torch_reference.py, torch_stylegan2.py)
have gen_jax's architectures: as many parameters per network, for every
ResNet and StyleGAN2 case bench/train_steps.py times."""

import pytest

pytest.importorskip("torch")

from bench import torch_reference, train_steps  # noqa: E402

CASES = ("sngan16", "sngan32", "biggan16", "biggan32", "stylegan2_16",
         "stylegan2_32")


@pytest.mark.parametrize("name", CASES)
def test_reference_has_the_same_parameter_counts(name):
  case = train_steps.CASES[name]
  _, trainer = train_steps.build_trainer(case)
  assert (torch_reference.param_counts(case.torch_step())
          == train_steps.param_counts(trainer))
