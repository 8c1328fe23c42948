r"""SRGAN (Ledig et al. 2017): SRResNet generator (residual blocks,
sub-pixel x2/x4 upsampling), pre-trained on the pixel MSE for
`srgan.pretrain_steps`, then fine-tuned against a discriminator with
content loss + 1e-3 * adversarial loss; Adam (beta1 0.9), 1e-4 for the
critic and, here, 3e-4 for the generator (the paper: 1e-4) to fit in CPU
minutes; 2000 pre-training and 500 adversarial steps.

  python -m gen_jax.main --config=configs/srgan.py:digit_superres \
      --workdir=runs/srgan

x4 (8 -> 32 px): --config=configs/srgan.py:digit_superres:4 (image size 32).
The VGG19 content loss needs weights as .npz (gen_jax/models/vgg.py):
  --config.srgan.vgg_weights=/path/vgg19.npz --config.srgan.vgg_layer=conv2_2
(without them the content loss is the pixel MSE; one line says so).

ARG: a paired super-resolution dataset (digit_superres, digit_superres:4)
and optionally `small` (tests). The picture shows input | bicubic | output
| target; eval/psnr and eval/ssim against eval/bicubic_psnr and
eval/bicubic_ssim are over the held-out digits.
"""

from gen_jax import config_lib


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digit_superres")
  c = config_lib.base("srgan", dataset)
  c.data.image_size = 32 if dataset.endswith(":4") else 16
  c.data.batch_size = 32
  # Small images: a narrower generator and critic than the paper's.
  c.model.g_width = 32
  c.model.g_blocks = 4
  c.model.d_width = 32
  c.model.d_layers = 5
  c.model.d_dense = 256
  # The paper's Adam 1e-4 for both; a faster generator here (CPU minutes).
  c.optim.g_lr = 3e-4
  c.srgan.pretrain_steps = 2000
  c.train.num_steps = 2500
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.train.log_every = 50
  c.train.num_eval_samples = 297
  if small:
    config_lib.make_small(c)
  return c
