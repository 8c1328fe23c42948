"""experiments/augment_study.py: its report logic on hand-made runs, its
method configs, and the `digits:N` training subset it uses."""

import argparse
import os
import sys

import pytest

from conftest import REPO
from gen_jax import data
from gen_jax.errors import ConfigError

sys.path.insert(0, os.path.join(REPO, "experiments"))
import augment_study  # noqa: E402


def run(method, seed, fids, train):
  return {"method": method, "seed": seed, "run_minutes": 2.0,
          "history": [{"step": 100 * (i + 1), "fid": f}
                      for i, f in enumerate(fids)],
          "train": train}


RUNS = [
    run("none", 0, [80.0, 60.0, 90.0], {"d_real": 3.0, "d_fake": -2.0}),
    run("none", 1, [70.0, 50.0, 70.0], {"d_real": 5.0, "d_fake": -4.0}),
    run("ADA", 0, [90.0, 40.0, 45.0], {"d_real": 1.0, "d_fake": 0.0,
                                       "ada_p": 0.2, "ada_rt": 0.6}),
    run("ADA", 1, [90.0, 50.0, 55.0], {"d_real": 1.0, "d_fake": -1.0,
                                       "ada_p": 0.4, "ada_rt": 0.6}),
]


def test_summary_by_hand():
  rows = augment_study.summarize(RUNS)
  assert [r["method"] for r in rows] == ["none", "ADA"]
  none, ada = rows
  assert none["seeds"] == 2
  assert none["final"] == pytest.approx((80.0, 10.0))  # (90, 70): se 10
  assert none["best"] == pytest.approx((55.0, 5.0))    # (60, 50)
  assert none["gap"] == pytest.approx((7.0, 2.0))      # (5, 9)
  assert "ada_p" not in none
  assert ada["final"] == pytest.approx((50.0, 5.0))
  assert ada["ada_p"] == pytest.approx((0.3, 0.1))
  assert ada["gap"] == pytest.approx((1.5, 0.5))
  table = augment_study.markdown(rows, {"width": 32, "train_examples": 200,
                                        "steps": 300, "seeds": 2,
                                        "samples": 1000})
  assert "| none | 80.0±10.0 | 55.0±5.0 | 4.00±1.00 | -3.00±1.00 | " \
         "7.00±2.00 | - | - | 2.0 |" in table
  assert "| ADA | 50.0±5.0 | 45.0±5.0 |" in table


def test_method_configs_differ_only_in_augmentation():
  args = argparse.Namespace(
      train_examples=200, steps=10, seeds=2, width=8, evals=2, samples=100,
      ada_kimg=10.0)
  none, diff, ada, ref = (augment_study.method_config(m, args) for m in (
      "none", "DiffAugment", "ADA", augment_study.REFERENCE))
  assert none.data.name == "digits:200" and ref.data.name == "digits"
  assert (none.gan.augment, diff.gan.augment) == ("", "color,translation,"
                                                  "cutout")
  assert (ada.gan.ada_target, ada.gan.augment_p) == (0.6, 0.0)
  assert none.train.num_seeds == 2 and none.model.dcgan.d_width == 8
  assert len({augment_study.run_name(m, args) for m in (
      "none", "DiffAugment", "ADA", augment_study.REFERENCE)}) == 4


def test_digits_subset_keeps_the_first_training_examples():
  c = augment_study.common.load_config("dcgan", "digits:200,small")
  small, full = data.get_dataset(c.data), None
  c.data.name = "digits"
  full = data.get_dataset(c.data)
  assert small.info.num_train == 200
  assert small.info.num_eval == full.info.num_eval == 297
  for bad in ("digits:0", "digits:x", "digits:5000"):
    c.data.name = bad
    with pytest.raises(ConfigError, match=f"config.data.name='{bad}': after "
                       "'digits:' comes the number of training examples"):
      data.get_dataset(c.data)
