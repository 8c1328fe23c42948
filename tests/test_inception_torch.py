"""The Flax FID Inception against pytorch-fid's architecture in torch.

Same random state dict, saved with torch.save under pytorch-fid's key names
(the format of pt_inception-2015-12-05-6726825d.pth), converted by the
documented command's function; skipped where torch is not installed.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gen_jax.errors import DataError  # noqa: E402
from gen_jax.metrics import inception as inc  # noqa: E402
from gen_jax.models import inception as net  # noqa: E402

from tests import pytorch_fid_reference as ref  # noqa: E402


@pytest.fixture(scope="module")
def torch_model_and_file(tmp_path_factory):
  torch.set_num_threads(1)
  model = ref.randomize_(ref.FIDInception3(), seed=0)
  path = tmp_path_factory.mktemp("w") / inc.WEIGHTS_FILE
  torch.save(model.state_dict(), path)
  return model, path


def test_features_match_pytorch_fid(torch_model_and_file, tmp_path):
  model, pth = torch_model_and_file
  npz = tmp_path / inc.CONVERTED_FILE
  digest = inc.convert(pth, npz, sha256_prefix=None)
  assert digest == inc.sha256_file(pth)
  inception, message = inc.get_inception(npz, sha256_prefix=None)
  assert message == "" and inception.source_sha256 == digest
  # Two odd-sized images: the resize up to 299 is part of what is compared.
  x = np.random.default_rng(0).uniform(size=(2, 37, 29, 3)).astype(np.float32)
  with torch.no_grad():
    t = torch.from_numpy(x.transpose(0, 3, 1, 2))
    pool = model.pool3(t)
    logits = pool @ model.fc.weight.T
  ours = inception.features(x)
  np.testing.assert_allclose(ours["pool"], pool.numpy(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(ours["logits_unbiased"], logits.numpy(),
                             rtol=1e-4, atol=1e-3)
  assert np.abs(pool.numpy()).mean() > 0.05  # not a vacuous comparison


def test_pth_loads_directly_and_equals_npz(torch_model_and_file, tmp_path):
  _, pth = torch_model_and_file
  state, digest = inc.load_state(pth, sha256_prefix=None)
  npz = tmp_path / "w.npz"
  inc.convert(pth, npz, sha256_prefix=None)
  state_npz, digest_npz = inc.load_state(npz, sha256_prefix=None)
  assert digest == digest_npz
  assert state.keys() - state_npz.keys() == set()
  for k, v in state.items():
    np.testing.assert_array_equal(v, state_npz[k])
  # The state dict has pytorch-fid's keys: every one maps onto the network.
  net.variables_from_state_dict(state)
  assert "Mixed_7c.branch_pool.bn.running_var" in state
  assert "fc.weight" in state and not any(k.startswith("AuxLogits")
                                          for k in state)


def test_checksum_is_enforced(torch_model_and_file, tmp_path):
  _, pth = torch_model_and_file
  with pytest.raises(DataError, match="does not start with 6726825d"):
    inc.convert(pth, tmp_path / "w.npz")
  with pytest.raises(DataError, match="does not start with 6726825d"):
    inc.load_state(pth)


def test_resize_matches_torch_interpolate():
  import jax.numpy as jnp
  rng = np.random.default_rng(1)
  for shape in ((1, 32, 32, 3), (1, 400, 350, 3)):  # up and down
    x = rng.uniform(size=shape).astype(np.float32)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), size=(299, 299),
        mode="bilinear", align_corners=False).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(net.resize_bilinear(jnp.asarray(x)))
    np.testing.assert_allclose(got, want, atol=2e-6)
