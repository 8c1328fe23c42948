"""FLOPs of one training step, counted on the PyTorch reference.

Every matmul and convolution that PyTorch eager actually runs in one step
(forward, backward, and the double backward of the gradient penalty) is
counted with torch's own per-op formulas (`torch.utils.flop_counter`), 2 FLOPs
per multiply-add, full kernels including padding taps. Elementwise work
(batch norm, activations, Adam) is not counted; it is < 1% of these models'
FLOPs. gen_jax's step computes the same update, so one count serves both
frameworks (see BENCHMARKS.md for the small differences in what each skips).
"""

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class _Counter(TorchDispatchMode):
  # FlopCounterMode itself tracks modules with hooks that break
  # autograd.grad(create_graph=True); counting at dispatch level does not.
  def __init__(self):
    super().__init__()
    self.flops = 0

  def __torch_dispatch__(self, func, types, args=(), kwargs=None):
    kwargs = kwargs or {}
    out = func(*args, **kwargs)
    count = flop_registry.get(func._overloadpacket)
    if count is not None:
      self.flops += count(*args, **kwargs, out_val=out)
    return out


def count_flops(step: Callable[..., None], *batch: torch.Tensor) -> int:
  """Matmul + convolution FLOPs of one call `step(*batch)`."""
  with _Counter() as counter:
    step(*batch)
  return counter.flops
