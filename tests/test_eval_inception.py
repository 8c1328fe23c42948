"""The `inception` evaluator: metrics inside training, sharded features, and
runs without weights.

Random weights in the real (converted .npz) format; a handful of 16x16
digits resized to 299, so each test stays within seconds of Inception work.
"""

import numpy as np
import pytest

from conftest import load_config
from gen_jax import data, evaluators, parallel, train
from gen_jax.evaluators import inception as ev
from gen_jax.evaluators.base import Context
from gen_jax.metrics import inception as inc
from gen_jax.models import inception as net

NAMES = ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall",
         "density", "coverage")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  path = tmp_path_factory.mktemp("weights") / inc.CONVERTED_FILE
  inc.save_npz(path, net.state_dict_from_variables(net.random_variables(0)),
               source=inc.WEIGHTS_FILE,
               source_sha256=inc.SHA256_PREFIX + "0" * 56)
  return path


def _config(evals, num=10):
  c = load_config("dcgan", "digits,small")
  c.evals = evals
  c.inception.num_samples = num  # > train.num_eval_samples: a second draw
  c.inception.num_real = num
  c.train.num_eval_samples = 8
  c.train.eval_every = c.train.num_steps  # one evaluation
  return c


def test_sharded_features_equal_unsharded(weights):
  model, message = inc.get_inception(weights)
  assert model is not None, message
  x = np.random.default_rng(0).uniform(-1, 1, (5, 16, 16, 3)).astype(
      np.float32)
  sharded = inc.ShardedInception(model, parallel.make_mesh(), 1)
  assert sharded.devices == 8
  got = sharded.features(x, (-1, 1))
  want = model.features(x, (-1, 1), batch_size=5)
  for k in ("pool", "logits_unbiased"):
    assert got[k].shape == want[k].shape
    np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)


def test_run_logs_inception_metrics(weights, tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(inc.ENV_VAR, str(weights))
  # A fresh reference cache (the digit classifier stays in the test cache).
  monkeypatch.setattr(inc, "cache_dir", lambda: tmp_path / "cache")
  final = train.train_and_evaluate(_config(("inception", "domain",
                                            "samples")), str(tmp_path / "w"))
  for name in NAMES:
    assert np.isfinite(final[f"eval/inception_{name}"]), name
  assert "eval/fid" in final  # the domain FID keeps its name
  err = capsys.readouterr().err
  assert err.count("inception protocol: ") == 1
  assert '"num_fake": 10' in err and '"num_real": 10' in err
  assert '"reference": "digits:eval:16"' in err
  # The reference features were cached for the next run.
  assert list((tmp_path / "cache" / "inception_stats").glob("digits_eval_16_*"))


def test_conditional_run_gets_intra_class_fid(weights, tmp_path, monkeypatch):
  monkeypatch.setenv(inc.ENV_VAR, str(weights))
  c = load_config("cgan", "small")
  c.evals = ("inception",)
  c.inception.num_samples = c.inception.num_real = 8
  s = train.setup(c)
  # Through the scorer directly: labels with >= 2 per class, and too few.
  rng = np.random.default_rng(0)
  real = {"pool": rng.standard_normal((20, 4)), "label": np.repeat([0, 1], 10)}
  fake = {"pool": rng.standard_normal((20, 4)), "label": np.repeat([0, 1], 10)}
  out = ev.scores(fake, real, conditional=True)
  assert np.isfinite(out["inception_intra_fid"])
  assert "inception_intra_fid" not in ev.scores(fake, real, conditional=False)
  fake["label"] = np.r_[np.zeros(19), 1]
  assert np.isnan(ev.scores(fake, real, conditional=True)[
      "inception_intra_fid"])
  assert s.evaluation.names == ["inception"]


def test_without_weights_one_line_and_the_domain_metrics_still_run(
    tmp_path, monkeypatch, capsys):
  monkeypatch.delenv(inc.ENV_VAR, raising=False)
  monkeypatch.setattr(inc, "cache_dir", lambda: tmp_path / "cache")
  s = train.setup(_config(("inception", "domain", "samples")))
  assert "Inception metrics skipped" in capsys.readouterr().err  # at set-up
  state = s.init(s.key)
  for step in (2, 4):  # said once, not at every evaluation
    result = s.evaluation(state, s.trainer.eval_key(s.key), step)
    assert np.isfinite(result.metrics["eval/fid"])
    assert not [k for k in result.metrics if "inception" in k]
  assert "Inception" not in capsys.readouterr().err


def test_default_set_skips_only_the_embedded_digits():
  c = load_config("dcgan", "digits,small")
  def ctx(name, shape):
    info = data.DatasetInfo(name=name, kind="image", example_shape=shape,
                            value_range=(-1, 1), num_train=10, num_eval=10)
    return Context(info=info, conditional=False, num_classes=0,
                   has_held_out=False, run_names=["0"], reference=dict,
                   config=c)
  e = evaluators.EVALUATORS.get("inception")
  assert e.in_default(ctx("cifar10", (32, 32, 3)))
  assert e.in_default(ctx("mnist", (28, 28, 1)))  # grey: repeated to RGB
  assert not e.in_default(ctx("digits", (16, 16, 1)))
  assert e.applies(ctx("digits", (16, 16, 1)))  # but runs when named
  assert not e.applies(ctx("x", (16, 16, 4)))
  assert "inception" not in train.setup(c).evaluation.names


def test_draw_gives_more_samples_per_seed_in_chunks(monkeypatch):
  """`ctx.draw(n)`: the evaluation's samples first, then fresh draws of the
  compiled size, n per run (here 2 seeds of a 2D GAN: no Inception)."""
  from gen_jax.evaluators.base import Evaluator
  seen = []

  def count(ctx, runs):
    chunks = list(ctx.draw(20))
    seen.append((runs, chunks))
    return [{} for _ in runs], {}
  monkeypatch.setitem(evaluators.EVALUATORS._entries, "count",
                      Evaluator("samples", lambda ctx: True, count))
  c = load_config("gan_2d", "ring,small")
  c.train.num_seeds, c.train.num_eval_samples, c.evals = 2, 8, ("count",)
  c.mesh.num_devices = 2  # the seed axis is sharded
  s = train.setup(c)
  s.evaluation(s.init(s.key), s.trainer.eval_key(s.key), 0)
  (runs, chunks), = seen
  assert [len(ch[0]["x"]) for ch in chunks] == [8, 8, 4]
  assert all(len(ch) == 2 for ch in chunks)  # one entry per seed
  np.testing.assert_array_equal(chunks[0][1]["x"], runs[1]["x"])
  x = np.concatenate([ch[0]["x"] for ch in chunks])
  assert len(np.unique(x, axis=0)) == 20  # fresh draws, not repeats
  assert not np.array_equal(chunks[1][0]["x"], chunks[1][1]["x"])
