"""Progressive growing: the schedule, the fade's exact end points in both
growable architectures, fixed parameter shapes, one program per phase, the
metrics, config errors, and a bitwise resume across a phase change. (The
end-to-end `small` run of configs/progressive.py is test_train.py's smoke
test.)"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_bitwise_equal, load_config, read_checkpoint
from gen_jax import train
from gen_jax.errors import ConfigError
from gen_jax.models import dcgan, progressive, resnet, stylegan2


def test_schedule_by_hand():
  s = progressive.Schedule(levels=(4, 8, 16), start=0, phase_steps=10)
  assert s.phases == ((0, False), (1, True), (1, False), (2, True),
                      (2, False))
  assert s.phase_starts == (10, 20, 30, 40)
  assert s.alpha(3, 0) is None and s.alpha(25, 2) is None  # stable
  for step, phase, alpha in [(10, 1, 0.0), (15, 1, 0.5), (19, 1, 0.9),
                             (30, 3, 0.0), (38, 3, 0.8)]:
    np.testing.assert_allclose(s.alpha(step, phase), alpha, rtol=1e-6)
  late = progressive.Schedule(levels=(4, 8, 16), start=1, phase_steps=3)
  assert late.phases == ((1, False), (2, True), (2, False))
  assert late.phase_starts == (3, 6)


def test_real_images_fade_like_the_generator():
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 1))
  low = progressive.downsample(x)
  np.testing.assert_array_equal(progressive.real_at(x, 8), low)
  np.testing.assert_array_equal(progressive.real_at(x, 16, jnp.float32(1)), x)
  np.testing.assert_array_equal(progressive.real_at(x, 16, jnp.float32(0)),
                                progressive.upsample(low))
  np.testing.assert_allclose(progressive.real_at(x, 4),
                             x.reshape(2, 4, 4, 4, 4, 1).mean((2, 4)),
                             rtol=1e-5, atol=1e-6)


NETS = {
    "dcgan": (dcgan.Generator(resolution=16, channels=1, width=8,
                              progressive=True),
              dcgan.Discriminator(width=8, progressive=True, resolution=16)),
    "resnet": (resnet.Generator(resolution=16, channels=1, width=8,
                                progressive=True),
               resnet.Discriminator(width=8, mult=(1, 1, 1),
                                    down=(True, True, False),
                                    progressive=True, resolution=16)),
    "stylegan2": (stylegan2.Generator(resolution=16, channels=1, z_dim=16,
                                      w_dim=16, mapping_layers=2, width=16,
                                      max_width=16),
                  stylegan2.Discriminator(width=16, max_width=16,
                                          progressive=True, resolution=16)),
}


@pytest.mark.parametrize("arch", sorted(NETS))
def test_fade_is_exactly_the_old_level_at_0_and_the_new_at_1(arch):
  g, d = NETS[arch]
  z = jax.random.normal(jax.random.key(0), (4, 16))
  noise = {"noise": jax.random.key(4)}  # StyleGAN2's noise inputs
  # (jitted: an eager init of StyleGAN2 dispatches op by op, 4x slower)
  gv = jax.jit(functools.partial(g.init, train=False))(
      {"params": jax.random.key(1), **noise}, z, None)
  x = jax.random.normal(jax.random.key(2), (4, 16, 16, 1))
  dv = d.init(jax.random.key(3), x, None, train=False)
  gen = lambda **kw: g.apply(gv, z, None, train=False, rngs=noise, **kw)
  crit = lambda img, **kw: d.apply(dv, img, None, train=False, **kw)
  stable = [gen(level=k) for k in range(3)]
  assert [o.shape[1] for o in stable] == [4, 8, 16]
  np.testing.assert_array_equal(stable[2], gen())  # the top level
  for k in (1, 2):
    np.testing.assert_array_equal(gen(level=k, alpha=jnp.float32(0)),
                                  progressive.upsample(stable[k - 1]))
    np.testing.assert_array_equal(gen(level=k, alpha=jnp.float32(1)),
                                  stable[k])
    xk = progressive.resize(x, 4 * 2 ** k)
    np.testing.assert_array_equal(
        crit(xk, level=k, alpha=jnp.float32(0)),
        crit(progressive.downsample(xk), level=k - 1))
    np.testing.assert_array_equal(crit(xk, level=k, alpha=jnp.float32(1)),
                                  crit(xk, level=k))
  half = gen(level=2, alpha=jnp.float32(0.5))
  assert not np.array_equal(half, stable[2])
  assert not np.array_equal(half, progressive.upsample(stable[1]))


def small_progressive(num_steps=4):
  c = load_config("progressive", "small")  # phases: 8 px, fade, 16 px
  c.mesh.num_devices = 1
  c.train.num_steps = num_steps
  return c


@pytest.fixture(scope="module")
def grown():
  """A small progressive run stepped in-process through its three phases:
  (setup, initial state, state after 4 steps, per-step metrics)."""
  s = train.setup(small_progressive())
  state = s.init(s.key)
  init = jax.device_get(state)
  stream, metrics = s.stream(), []
  for i in range(4):
    state, m = s.step_for(i)(state, s.batch(stream))
    metrics.append(jax.device_get(m))
  return s, init, jax.device_get(state), metrics


def test_one_program_per_phase_and_fixed_shapes(grown):
  s, init, final, metrics = grown
  t = s.trainer.inner
  assert t.num_phases == len(s.train_steps) == 3
  assert [t.phase_of(i) for i in range(4)] == [0, 1, 2, 2]
  shapes = lambda st: jax.tree.map(lambda a: (a.shape, a.dtype),
                                   (st.params, st.opt_state, st.model_state))
  assert shapes(init) == shapes(final)
  assert [f._cache_size() for f in s.train_steps] == [1, 1, 1]
  # The optimizers restart at each phase boundary (steps 1 and 2): the
  # generator's Adam has counted steps 2 and 3 only (test_schedules.py: a
  # decaying rate's schedule keeps counting).
  assert int(final.opt_state["generator"][0].count) == 2
  # levels (4, 8, 16): 8 px stable, the fade into 16 px at its first step
  # (alpha 0, phase_steps 1), then 16 px alone; the same names throughout.
  assert [(float(m["pg_level"]), float(m["pg_alpha"])) for m in metrics] == [
      (1.0, 1.0), (2.0, 0.0), (2.0, 1.0), (2.0, 1.0)]
  assert all(set(m) == set(metrics[0]) for m in metrics)


def test_samples_come_at_the_full_size_from_the_phase_of_the_step(grown):
  s, init, final, _ = grown
  t = s.trainer.inner
  sample = jax.jit(lambda st: t.sample(st, jax.random.key(0), 4)["x"])
  assert sample(final).shape == (4, 16, 16, 1)
  # At step 0 (phase 0, 8 px): the 8 px samples, upsampled.
  low = t.at_phase(0, 0)._sample(init, jax.random.key(0), 4)["x"]
  assert low.shape == (4, 8, 8, 1)
  np.testing.assert_allclose(sample(init), progressive.upsample(low),
                             atol=1e-6)


@pytest.mark.parametrize("change,message", [
    ({"start_res": 5}, r"config.gan.progressive.start_res=5 must be 0 \(off\) "
                       r"or one of: 4, 8 \(the dcgan levels below "
                       r"config.data.image_size=16\)"),
    ({"start_res": 16}, "start_res=16 must be 0"),
    ({"phase_steps": 0}, "config.gan.progressive.phase_steps=0 must be "
                         "positive"),
])
def test_bad_progressive_fields_are_one_line(change, message):
  c = load_config("progressive", "small")
  c.gan.progressive.update(change)
  with pytest.raises(ConfigError, match=message):
    train.setup(c)


def test_architectures_that_cannot_grow_say_so():
  c = load_config("gan_2d", "small")
  c.gan.progressive.start_res = 4
  with pytest.raises(ConfigError, match="config.model.arch='mlp' cannot grow "
                     "progressively; progressive architectures: dcgan, "
                     "resnet, stylegan2$"):
    train.setup(c)
  c = load_config("sngan", "cifar10,small")
  c.gan.progressive.start_res = 4  # the critic pools 32 px to 8 px at most
  with pytest.raises(ConfigError, match="never reads 4 px images at 32 px"):
    train.setup(c)


def small_stylegan2_growing(num_steps=2):
  """configs/stylegan2.py small, grown from 8 px (phases: 8 px, fade into
  16 px, 16 px), with R1 and the path-length term at every step, so both
  run in the fade."""
  c = load_config("stylegan2", "small")
  c.mesh.num_devices = 1
  c.train.num_steps = num_steps
  c.gan.progressive.update(start_res=8, phase_steps=1)
  c.gan.penalty_every = c.gan.g_regularizer_every = 1
  return c


@pytest.mark.parametrize("arch", ["dcgan", "stylegan2"])
def test_resume_across_a_phase_change_is_exact(tmp_path, arch):
  """Stopped after the first phase, resumed through the phase change (the
  fade into 16 px; for dcgan on into the stable phase): bitwise the
  uninterrupted run."""
  if arch == "dcgan":
    c, stop = small_progressive(num_steps=3), 1
  else:  # its lazy regularisers' state (pl_mean) and w_avg too
    c, stop = small_stylegan2_growing(num_steps=2), 1
  c.evals = ("samples",)  # saves compiling the feature network
  end = c.train.num_steps
  c.train.update(checkpoint_every=1, eval_every=end, log_every=1)
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  train.train_and_evaluate(c, whole)
  c.train.num_steps = stop
  train.train_and_evaluate(c, parts)
  c.train.num_steps = end
  train.train_and_evaluate(c, parts)
  a, b = read_checkpoint(whole, end), read_checkpoint(parts, end)
  a.pop("loop"), b.pop("loop")
  assert_bitwise_equal(a, b)


def test_stylegan2_grows_with_its_regularisers_at_the_phase_level():
  """At a lower level the mapping's mixing cutoff and the path-length
  term see only the styles that level's synthesis uses, and the critic's
  per-level heads take the pooled images."""
  c = small_stylegan2_growing()
  s = train.setup(c)
  t = s.trainer.inner
  state = s.init(s.key)
  z = t.draw_noise(jax.random.key(0), 4)
  g_state = state.model_state["generator"]

  @jax.jit
  def run(state, phase_step):
    out = []
    for phase in (0, 1):  # 8 px stable, the fade into 16 px
      view = t.at_phase(phase, phase_step)
      fake, ws, _, synthesis = view.generate_styled(
          state.params["generator"], g_state, z, jax.random.key(1))
      logits, _ = view.critic(state.params["discriminator"],
                              state.model_state["discriminator"], fake, None)
      out.append((fake, ws, synthesis(ws), logits))
    return out

  for (fake, ws, again, logits), (res, used) in zip(
      run(state, jnp.int32(1)), [(8, stylegan2.num_ws(8)),
                                 (16, stylegan2.num_ws(16))]):
    assert fake.shape == again.shape == (4, res, res, 1)
    assert ws.shape[1] == used
    assert logits.shape == (4,) and np.all(np.isfinite(logits))
  assert stylegan2.num_ws(8) < stylegan2.num_ws(16) == t.generator.num_ws


def test_stylegan2_mixing_cutoff_is_drawn_among_the_levels_styles():
  """With mixing probability 1 at level 1 (8 px: 4 styles of 6), the cutoff
  falls inside the 4, so the last used style always comes from the second
  z (drawn among all 6, it would not for cutoffs 4 and 5)."""
  g = stylegan2.Generator(resolution=16, channels=1, z_dim=8, w_dim=8,
                          mapping_layers=1, width=8, max_width=8, mixing=1.0)
  z = jax.random.normal(jax.random.key(0), (2, 8))
  v = jax.jit(g.init)({"params": jax.random.key(1),
                       "noise": jax.random.key(2)}, z)
  used = stylegan2.num_ws(8)
  mapping = jax.jit(jax.vmap(lambda key: g.apply(
      v, z, None, True, level=1, method="mapping", mutable=["tracked"],
      rngs={"mixing": key})[0]))
  for ws in mapping(jax.random.split(jax.random.key(3), 12)):
    assert not np.allclose(ws[:, used - 1], ws[:, 0])
    np.testing.assert_array_equal(ws[:, used - 1], ws[:, -1])
