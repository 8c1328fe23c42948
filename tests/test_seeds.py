"""Many seeds in one program (`config.train.num_seeds`)."""

import json
import math
import os
import re

import jax
import numpy as np
import pytest

from conftest import load_config
from gen_jax import seeds, train
from gen_jax.errors import ConfigError

SEED = 3


def ring(num_seeds=1, seed=SEED, num_steps=6):
  c = load_config("gan_2d", "ring,small")
  c.seed = seed
  c.train.num_seeds = num_seeds
  c.train.num_steps = num_steps
  c.train.eval_every = 6
  return c


def records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def eight_seeds(tmp_path_factory):
  """Eight seeds (SEED .. SEED+7), 6 steps, one per simulated device."""
  workdir = str(tmp_path_factory.mktemp("seeds"))
  final = train.train_and_evaluate(ring(num_seeds=8), workdir)
  return workdir, final


def test_seed_i_matches_a_single_run_with_seed_plus_i(eight_seeds, tmp_path):
  workdir, final = eight_seeds
  i = 5
  single_final = train.train_and_evaluate(ring(seed=SEED + i), str(tmp_path))
  single, many = records(str(tmp_path)), records(workdir)
  assert [r["step"] for r in single] == [r["step"] for r in many]
  compared = 0
  for one, all_seeds in zip(single, many):
    for k, v in one.items():
      if k in ("step", "steps_per_sec"):
        continue
      # Same data, keys and updates; only float32 reduction order differs
      # (the single run splits its batch over 8 devices, the seed run keeps
      # it on one), ~1e-7 relative per step: 1e-5 after 6 steps is ample,
      # while a different key or batch changes these values at 1e-2.
      assert all_seeds[f"{k}/seed_{SEED + i}"] == pytest.approx(
          v, rel=1e-5, abs=1e-6, nan_ok=True), k
      compared += 1
  assert compared >= 15
  assert "eval/reverse_kl" in single_final
  assert final[f"eval/reverse_kl/seed_{SEED + i}"] == pytest.approx(
      single_final["eval/reverse_kl"], rel=1e-5)


def test_metrics_are_reported_per_seed_and_as_mean_and_stderr(eight_seeds):
  _, final = eight_seeds
  for k in ("d_loss", "g_loss", "eval/reverse_kl", "eval/modes"):
    per_seed = [final[f"{k}/seed_{s}"] for s in range(SEED, SEED + 8)]
    assert final[k] == pytest.approx(np.mean(per_seed))
    assert final[f"{k}_se"] == pytest.approx(
        np.std(per_seed, ddof=1) / math.sqrt(8))
  # The seeds are different runs.
  assert len({final[f"d_loss/seed_{s}"] for s in range(SEED, SEED + 8)}) == 8
  workdir = eight_seeds[0]
  assert os.path.exists(os.path.join(workdir, "samples", "step_0000006.png"))


def test_summarize_hand_computed():
  out = seeds.summarize({"a": np.array([1.0, 2.0, 3.0, 6.0]),
                         "steps_per_sec": 7.0}, [10, 11, 12, 13])
  assert out["a"] == 3.0
  assert out["a_se"] == pytest.approx(math.sqrt(14 / 3) / 2)
  assert out["a/seed_12"] == 3.0
  assert out["steps_per_sec"] == 7.0


def test_resumed_seed_run_continues_every_seed_s_stream(eight_seeds, tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(ring(num_seeds=8, num_steps=4), workdir)
  final = train.train_and_evaluate(ring(num_seeds=8, num_steps=6), workdir)
  assert [r["step"] for r in records(workdir) if "steps_per_sec" in r] == [
      2, 4, 6]
  uninterrupted = eight_seeds[1]
  for s in range(SEED, SEED + 8):
    assert final[f"g_loss/seed_{s}"] == pytest.approx(
        uninterrupted[f"g_loss/seed_{s}"], rel=1e-5)


def test_many_seed_step_is_sharded_by_seed_without_communication(tmp_path):
  s = train.setup(ring(num_seeds=8))
  state = jax.eval_shape(s.trainer.init, s.key)
  batch = {"x": jax.ShapeDtypeStruct((8, 1, 16, 2), np.float32)}
  compiled = s.train_step.lower(state, batch).compile()
  assert not re.search(r"all-reduce|all-gather|all-to-all|reduce-scatter|"
                       r"collective-permute", compiled.as_text())
  state_sharding = jax.tree.leaves(compiled.output_shardings[0])[0]
  assert state_sharding.spec == jax.sharding.PartitionSpec("data")


def test_num_seeds_must_divide_over_the_devices(tmp_path):
  with pytest.raises(ConfigError, match="config.train.num_seeds=3 must be "
                     "divisible by the 8 devices"):
    train.train_and_evaluate(ring(num_seeds=3), str(tmp_path))
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("name", ["vae", "dcgan", "pix2pix", "cyclegan",
                                  "stylegan2"])
def test_other_models_train_many_seeds(name, tmp_path):
  c = load_config(name, "small")
  c.train.num_seeds = 8
  if name == "cyclegan":
    # Compiling 8 seeds of four networks (the step, and each evaluator's
    # function) is the cost: 2 steps (the pools fill at the first and
    # swap at the second) and the evaluators of the seeds' translations
    # of held-out inputs, without the held-out sums.
    c.train.update(num_steps=2, eval_every=2, checkpoint_every=2)
    c.evals = ("translation_fid", "cycles")
  if name == "stylegan2":
    # 2 steps: the lazy R1 and path-length terms run at step 0 (`small`:
    # every 2 steps) with their per-seed pl_mean; one evaluation
    c.train.update(num_steps=2, eval_every=2, checkpoint_every=2)
  final = train.train_and_evaluate(c, str(tmp_path))
  key = {"vae": "eval/neg_elbo", "pix2pix": "eval/l1",
         "cyclegan": "eval/fid_ab"}.get(name, "eval/fid")
  assert np.isfinite(final[key])
  assert f"{key}/seed_7" in final and f"{key}_se" in final
  if name == "vae":  # held-out terms are per seed too
    assert final["eval/neg_elbo/seed_2"] == pytest.approx(
        final["eval/recon/seed_2"] + final["eval/kl/seed_2"], rel=1e-5)
