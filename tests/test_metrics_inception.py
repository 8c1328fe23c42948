"""Inception metrics on known answers; weights handling; `python -m gen_jax.fid`.

The network runs here only in the CLI test (random weights, 4 tiny images);
its parity with pytorch-fid is `test_inception_torch.py`.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gen_jax import fid
from gen_jax.errors import DataError
from gen_jax.metrics import image_sets as S
from gen_jax.metrics import inception as inc
from gen_jax.models import inception as net

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- metrics on known answers -------------------------------------------------

def test_fid_identical_sets_is_zero_and_gaussians_closed_form():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((50, 6)) @ rng.standard_normal((6, 6))
  out = inc.inception_metrics({"pool": x}, {"pool": x.copy()})
  assert abs(out["fid"]) < 1e-8
  # Gaussians with commuting covariances: ||m1 - m2||^2 + sum (s1 - s2)^2.
  mu1, mu2 = np.array([1.0, 0.0, 2.0]), np.array([0.0, 0.0, -1.0])
  s1, s2 = np.array([4.0, 9.0, 1.0]), np.array([1.0, 1.0, 0.25])
  want = 1 + 9 + ((2 - 1) ** 2 + (3 - 1) ** 2 + (1 - 0.5) ** 2)
  got = S.frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
  assert got == pytest.approx(want, rel=1e-12)
  # And through cached statistics (`mu`, `sigma` win over `pool`).
  real = {"pool": x, "mu": mu2, "sigma": np.diag(s2)}
  fake = {"pool": x, "mu": mu1, "sigma": np.diag(s1)}
  assert inc.inception_metrics(fake, real)["fid"] == pytest.approx(want)


def test_kid_unbiased_by_hand():
  # D = 1, k(a, b) = (a b + 1)^3: k_xx(0, 1) = 1, k_yy(1, 2) = 27,
  # k_xy = 1, 1, 8, 27 -> 1 + 27 - 2 * 37 / 4 = 9.5.
  x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
  out = inc.inception_metrics({"pool": x}, {"pool": y})
  assert out["kid"] == pytest.approx(9.5) and out["kid_std"] == 0.0
  assert "precision" not in out and "density" not in out  # too few points


def test_density_coverage_constructed():
  real = np.arange(10.0)[:, None]  # k = 1: every radius is 1
  assert S.density_coverage(np.array([[0.5]]), real, k=1) == (2.0, 0.2)
  # Strictly inside: 1.0 is at distance 1 of 0 and 2, inside only 1's ball.
  assert S.density_coverage(np.array([[1.0]]), real, k=1) == (1.0, 0.1)
  assert S.density_coverage(np.array([[100.0]]), real, k=1) == (0.0, 0.0)
  # k = 2: radii 1 inside, 2 at the ends (0 -> 2, 9 -> 7). 4.5 lies in the
  # balls of 4 and 5; -1.5 only in 0's (1.5 < 2): (2 + 1) / (2 k) = 0.75.
  density, coverage = S.density_coverage(np.array([[4.5], [-1.5]]), real,
                                         k=2)
  assert density == 0.75 and coverage == 0.3
  # Identical sets: every real ball holds its own centre.
  assert S.density_coverage(real, real, k=5)[1] == 1.0


def test_precision_recall_and_dc_through_inception_metrics():
  rng = np.random.default_rng(1)
  real = rng.standard_normal((40, 3))
  far = real + 100.0
  out = inc.inception_metrics({"pool": far}, {"pool": real})
  assert out["precision"] == out["recall"] == 0.0
  assert out["density"] == out["coverage"] == 0.0
  out = inc.inception_metrics({"pool": real}, {"pool": real})
  assert out["precision"] == out["recall"] == out["coverage"] == 1.0


def test_inception_score_by_hand():
  # Confident and balanced within every split of 2: IS = number of classes.
  p = np.tile(np.eye(2), (10, 1))  # 20 rows alternating the two classes
  logits = np.log(np.clip(p, 1e-300, None))
  mean, std = S.inception_score(logits, splits=10, shuffle_seed=None)
  assert mean == pytest.approx(2.0) and std == pytest.approx(0.0, abs=1e-12)
  # One class everywhere: IS = 1.
  assert S.inception_score(np.zeros((20, 5)))[0] == pytest.approx(1.0)
  # Soft: rows (0.9, 0.1), (0.1, 0.9); p(y) = (0.5, 0.5) in every split.
  q = np.tile([[0.9, 0.1], [0.1, 0.9]], (10, 1))
  kl = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
  got = S.inception_score(np.log(q), splits=10, shuffle_seed=None)[0]
  assert got == pytest.approx(np.exp(kl), rel=1e-12)
  with pytest.raises(ValueError, match="splits=10"):
    S.inception_score(np.zeros((5, 3)))


def test_intra_class_fid():
  rng = np.random.default_rng(2)
  real = rng.standard_normal((60, 4))
  labels = np.repeat([0, 1, 2], 20)
  shift = np.where(labels[:, None] == 1, 3.0, 0.0) * np.array([1, 0, 0, 0])
  out = S.intra_class_fid(real + shift, labels, real, labels)
  assert out["per_class"][0] == pytest.approx(0.0, abs=1e-9)
  assert out["per_class"][1] == pytest.approx(9.0)  # ||(3, 0, 0, 0)||^2
  assert out["intra_fid"] == pytest.approx(3.0)
  with pytest.raises(ValueError, match="label 2 has 1 samples"):
    S.intra_class_fid(real[:41], labels[:41], real, labels)


# --- weights ------------------------------------------------------------------

def _random_npz(path, source_sha256="6726825d" + "0" * 56, state=None):
  """pytorch-fid-named random weights in the converted format."""
  if state is None:
    state = net.state_dict_from_variables(net.random_variables(0))
  inc.save_npz(path, state, source=inc.WEIGHTS_FILE,
               source_sha256=source_sha256)
  return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
  path = tmp_path_factory.mktemp("weights") / inc.CONVERTED_FILE
  return path, _random_npz(path)


def test_missing_weights_message(monkeypatch, tmp_path):
  monkeypatch.delenv(inc.ENV_VAR, raising=False)
  monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path))
  inception, message = inc.get_inception()
  assert inception is None
  assert "\n" not in message
  assert inc.WEIGHTS_FILE in message and inc.ENV_VAR in message
  assert str(tmp_path / "inception" / inc.CONVERTED_FILE) in message
  assert "python -m gen_jax.fid convert" in message


def test_npz_checks(weights, tmp_path):
  good, state = weights
  loaded, digest = inc.load_state(good)
  assert digest.startswith(inc.SHA256_PREFIX) and loaded.keys() == state.keys()
  # The recorded source is another file: refused.
  small = {"fc.bias": np.zeros(3, np.float32)}
  _random_npz(tmp_path / "other.npz", source_sha256="ab" * 32, state=small)
  with pytest.raises(DataError, match="does not start with 6726825d"):
    inc.load_state(tmp_path / "other.npz")
  # Arrays changed after conversion: refused.
  _random_npz(tmp_path / "small.npz", state=small)
  with np.load(tmp_path / "small.npz") as f:
    arrays = {k: f[k] for k in f.files}
  arrays["fc.bias"] = arrays["fc.bias"] + 1
  np.savez(tmp_path / "bad.npz", **arrays)
  with pytest.raises(DataError, match="corrupted"):
    inc.load_state(tmp_path / "bad.npz")
  # A state dict that is not the network's.
  state = dict(state)
  del state["fc.bias"]
  state["fc.extra"] = np.zeros(3, np.float32)
  state["fc.weight"] = state["fc.weight"][:10]
  with pytest.raises(ValueError, match="missing: fc.bias; unexpected: "
                     r"fc.extra; wrong shape: fc.weight \(10, 2048\)"):
    net.variables_from_state_dict(state)


# --- the command --------------------------------------------------------------

def test_score_folder_against_npz(weights, tmp_path):
  rng = np.random.default_rng(0)
  folder = tmp_path / "a"
  (folder / "sub").mkdir(parents=True)
  for i in range(4):
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), np.uint8)).save(
        folder / ("sub" if i % 2 else "") / f"{i}.png")
  np.savez(tmp_path / "b.npz", x=rng.uniform(-1, 1, (4, 24, 24, 3)))
  metrics, protocol = fid.score(str(folder), str(tmp_path / "b.npz"),
                                weights=str(weights[0]), batch_size=4)
  assert metrics["fid"] > 0 and "kid" in metrics and "precision" in metrics
  assert protocol.num_real == protocol.num_fake == 4
  table = fid.markdown(metrics, protocol)
  assert "| FID |" in table and "| weights_sha256 | 6726825d" in table


def test_bad_inputs_are_user_errors(tmp_path):
  np.savez(tmp_path / "c.npz", x=np.full((3, 8, 8, 3), 7.0))
  with pytest.raises(DataError, match=r"must lie in \[0, 1\] or \[-1, 1\]"):
    fid.open_set(str(tmp_path / "c.npz"))
  np.savez(tmp_path / "d.npz", y=np.zeros(3))
  with pytest.raises(DataError, match="no key 'x'"):
    fid.open_set(str(tmp_path / "d.npz"))
  with pytest.raises(DataError, match="is not a folder, an .npz/.npy file or "
                     "a dataset"):
    fid.open_set("no_such_dataset:train")
  with pytest.raises(DataError, match="split 'val'"):
    fid.open_set("digits:val")
  folder = tmp_path / "mixed"
  folder.mkdir()
  for size in (8, 9):
    Image.new("RGB", (size, size)).save(folder / f"{size}.png")
  with pytest.raises(DataError, match="images differ in size"):
    list(fid.open_set(str(folder)).chunks)


def test_cli_exit_codes(tmp_path):
  def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "gen_jax.fid", *args],
                          capture_output=True, text=True, cwd=REPO,
                          timeout=300, env={**os.environ, **(env or {})})
  np.savez(tmp_path / "a.npz", x=np.zeros((3, 8, 8, 3), np.float32))
  result = run(str(tmp_path / "a.npz"), str(tmp_path / "a.npz"),
               env={inc.ENV_VAR: "", "GEN_JAX_CACHE": str(tmp_path)})
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert lines == [result.stderr.strip().splitlines()[-1]]
  assert lines[0].startswith("error: Inception metrics skipped")
  assert inc.WEIGHTS_FILE in lines[0]
