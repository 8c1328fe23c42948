"""Nothing lost in the move to the trainer protocol: DCGAN, WGAN-GP and the
VAE on digits (`small` configs, 4 steps through `train_and_evaluate`, 8
simulated devices) end with the parameters and logged losses of the code
before it.

`data/pre_protocol_small.npz` was written by the training loop of commit
3385aa5 (GanState/VaeState) from the same configs: for each config the
final checkpoint's parameters (its `g_params`/`d_params` as `generator/...`,
`discriminator/...`; the VAE's `params` as `vae/...`) and metrics.jsonl
without `steps_per_sec`.
"""

import json
import os

import numpy as np
import pytest

from conftest import load_config, read_checkpoint
from gen_jax import train

REFERENCE = os.path.join(os.path.dirname(__file__), "data",
                         "pre_protocol_small.npz")


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp", "vae"])
def test_same_numbers_as_before_the_protocol(tmp_path, name):
  ref = np.load(REFERENCE)
  config = load_config(name, "digits,small")
  if name == "wgan_gp":  # the critic's layer norm of 3385aa5 (per pixel)
    config.model.d_norm = PER_PIXEL_LAYER_NORM
  config.evals = ("samples",) if name != "vae" else ("held_out", "samples")
  train.train_and_evaluate(config, str(tmp_path))
  ckpt = read_checkpoint(str(tmp_path), config.train.num_steps)
  expected = {k[len(name) + 1:]: ref[k] for k in ref.files
              if k.startswith(name + "/") and not k.endswith("/metrics")}
  # Old names -> the generic state's: g_state -> model_state/generator.
  rename = lambda k: ("state/model_state/" + k.replace("_state/", "/", 1)
                      if k.split("/")[0].endswith("_state")
                      else "state/params/" + k)
  expected = {rename(k): v for k, v in expected.items()}
  got = {k: v for k, v in ckpt.items()
         if k.startswith(("state/params/", "state/model_state/"))
         and (k.startswith("state/params/") or "batch_stats" in k)}
  assert got.keys() == expected.keys()
  # WGAN-GP's second-order penalty gradients round differently on another
  # CPU's instruction set, and Adam's normalised early steps (lr 1e-4)
  # amplify that to a few 1e-5 in 4 steps (measured 4e-5 on a machine
  # other than the reference's); the logged losses still agree to 1e-4.
  atol = 1e-4 if name == "wgan_gp" else 1e-6
  for k in expected:
    np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=atol,
                               err_msg=k)
  logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  old = json.loads(str(ref[f"{name}/metrics"]))
  train_lines = lambda lines: [{k: v for k, v in r.items()
                                if k != "steps_per_sec"} for r in lines
                               if "steps_per_sec" in r]
  new_lines = train_lines(logged)
  old_lines = [r for r in old if not any(k.startswith("eval/") for k in r)]
  assert [r["step"] for r in new_lines] == [r["step"] for r in old_lines]
  for a, b in zip(new_lines, old_lines):
    assert a.keys() == b.keys()
    for k in a:
      assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), k


PER_PIXEL_LAYER_NORM = "layer_channel"  # issue 18 renamed it
