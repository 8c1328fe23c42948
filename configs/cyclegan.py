r"""CycleGAN (Zhu et al. 2017): unpaired translation between domain A (the
dataset's `cond`) and domain B (its `x`), trainers/cyclegan.py.

The embedded task (trainable in CPU minutes): `digit_domains`, A = digits,
B = thickened, colour-inverted digits (`digit_domains:invert`: only
inverted; data/translation.py), 16 px:

  python -m gen_jax.main --config=configs/cyclegan.py:digit_domains \
      --workdir=runs/cyclegan_digits

Pictures: samples/cycles_step_N.png (rows A, A->B, A->B->A | B, B->A,
B->A->B); metrics: eval/label_ab, eval/label_ba (how often a translation
keeps its digit, read by a classifier of the target domain), eval/fid_ab,
eval/fid_ba (domain FIDs of the translations) against eval/fid_untranslated
(the A images themselves against B), and the held-out cycle errors
eval/cycle_a, eval/cycle_b.

The paper's settings (`horse2zebra`, or any TFDS `cycle_gan/NAME` pair as
`cycle_gan:NAME`, e.g. `cycle_gan:monet2photo`; prepare it first with
`python -m gen_jax.prepare_data cycle_gan:horse2zebra`): 256 px (the paper
trains on random 256 px crops of 286 px resizes, flipped; the loader here
resizes to 256 px), a 9-block ResNet generator, the 70x70
PatchGAN (3 layers), instance norm, least squares, lambda 10, identity
0.5 lambda, pools of 50, Adam 2e-4 (beta1 0.5), batch 1, 200 epochs with the
rate decayed linearly to 0 over the last 100 (an epoch is the larger
domain: horse2zebra's 1,334 zebras, so 266,800 steps):

  python -m gen_jax.main --config=configs/cyclegan.py:horse2zebra \
      --workdir=runs/horse2zebra

ARG: `digit_domains[:invert]` (default), `horse2zebra` or `cycle_gan:NAME`, and
optionally `small` (tests). For another pair, set `train.num_steps` to 200
epochs of its larger training domain (default: 200,000).
"""

from gen_jax import config_lib

# Steps of 200 epochs at batch 1 (the training set's larger domain).
_PAPER_STEPS = {"horse2zebra": 200 * 1_334}


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digit_domains")
  if dataset == "horse2zebra":
    dataset = "cycle_gan:horse2zebra"
  c = config_lib.base("cyclegan", dataset)
  if dataset.split(":")[0] == "digit_domains":
    c.data.image_size = 16
    c.data.batch_size = 8
    m = c.model
    # One downsampling: 8x8 maps keep the strokes' positions (2: 4x4).
    m.g_width, m.g_down, m.g_blocks = 16, 1, 3
    m.d_width, m.d_layers = 16, 2  # 16 px: at most 2 stride-2 layers
    # No identity term: asked to leave B images as they are while it
    # inverts A images (which, after instance norm, look like B images
    # with the sign of the features flipped), g_ab learnt to permute the
    # digits instead (a 3 became a 1 or an 8; label kept 2%: README).
    c.cyclegan.identity_weight = 0.0
    c.train.num_steps = 2000
    c.train.log_every = 100
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.train.num_eval_samples = 148  # the held-out split's A/B pairs
  else:  # the paper's 256 px settings
    c.data.image_size = 256
    c.data.batch_size = 1
    c.mesh.num_devices = 1  # batch 1 does not split over devices
    c.train.num_steps = _PAPER_STEPS.get(dataset.split(":")[-1],
                                         200 * 1_000)
    c.train.log_every = 100
    c.train.eval_every = 10_000
    c.train.checkpoint_every = 10_000
    c.train.num_eval_samples = 100
  if small:
    config_lib.make_small(c)
  return c
