r"""Pix2Pix (Isola et al. 2017): U-Net generator, PatchGAN critic on
(input, output) pairs, non-saturating loss + 100 * L1, Adam 2e-4 (beta1 0.5),
instance norm, batch 1 in the paper (here 32: CPU minutes).

  python -m gen_jax.main --config=configs/pix2pix.py:digit_edges \
      --workdir=runs/pix2pix_edges

The L1-only U-Net baseline (the paper's table 1; adversarial weight 0):
  python -m gen_jax.main --config=configs/pix2pix.py:digit_edges,l1_only \
      --workdir=runs/pix2pix_edges_l1

ARG: a paired image-to-image dataset (digit_edges, digit_thicken,
folder_pairs:PATH with A/ and B/ subfolders or side-by-side AB images),
optionally `l1_only`, and `small` (tests). Least squares instead of the
non-saturating loss: --config.pix2pix.loss=least_squares; batch norm:
--config.model.norm=batch --config.model.d_norm=batch.
The picture (samples/step_*.png) shows input | output | target; eval/l1,
eval/psnr, eval/ssim and eval/sharpness_ratio are over the held-out pairs.
"""

from gen_jax import config_lib


def get_config(arg=None):
  tokens = [t for t in (arg or "").split(",") if t]
  l1_only = "l1_only" in tokens
  dataset, small = config_lib.parse_arg(
      ",".join(t for t in tokens if t != "l1_only"), "digit_edges")
  c = config_lib.base("pix2pix", dataset)
  c.data.image_size = 64 if dataset.startswith("folder_pairs:") else 16
  c.data.batch_size = 32
  if dataset.startswith("folder_pairs:"):
    c.model.d_layers = 3
  else:  # 16 px: a 34x34 PatchGAN (n_layers 2) is the deepest that fits
    c.model.d_layers = 2
  if l1_only:
    c.pix2pix.adv_weight = 0.0
  c.train.num_steps = 2000
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.train.log_every = 50
  c.train.num_eval_samples = 297
  if small:
    config_lib.make_small(c)
  return c
