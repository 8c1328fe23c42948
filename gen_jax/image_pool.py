"""A history of generated images for the discriminator (Shrivastava et al.
2017, section 2.3; CycleGAN, Zhu et al. 2017, section 4), as pure functions
on a pool that lives in `TrainState.aux` (checkpointed, so a resume is
exact).

The discriminator is updated on fakes drawn from the pool rather than only
on the newest ones, which keeps it from forgetting what the generator did
before. As in the authors' released code (`util/image_pool.py`), the batch
is handled one image at a time, in order: while fewer than `size` images are
stored, the image is stored and returned as it is; afterwards, with
probability 1/2 a uniformly chosen stored image is returned and the new one
takes its place, else the new image is returned and the pool is unchanged.

A pool is `{'images': (size, H, W, C), 'count': ()}` (`count`: images stored
so far, at most `size`). `size` 0 turns the pool off (`query` returns the
batch). The random draws come from one key per batch, drawn for the whole
(global) batch, so the result does not depend on how the batch is split
over devices.
"""

from typing import Any

import jax
import jax.numpy as jnp

Pool = dict[str, Any]


def init(size: int, example_shape: tuple[int, ...],
         dtype=jnp.float32) -> Pool:
  """An empty pool of `size` images of `example_shape`."""
  return {"images": jnp.zeros((size, *example_shape), dtype),
          "count": jnp.zeros((), jnp.int32)}


def query(pool: Pool, images: jax.Array, key: jax.Array) -> tuple[Pool,
                                                                   jax.Array]:
  """(new pool, the batch the discriminator sees) for fakes (B, H, W, C).

  A scan over the B images (each may return one stored by an earlier image
  of the same batch, as in the released code's loop).
  """
  size = pool["images"].shape[0]
  if size == 0:
    return pool, images
  b = images.shape[0]
  k_swap, k_slot = jax.random.split(key)
  swap = jax.random.uniform(k_swap, (b,)) > 0.5
  slot = jax.random.randint(k_slot, (b,), 0, size)

  def one(carry, inputs):
    stored, count = carry
    image, swap_i, slot_i = inputs
    filling = count < size
    # Where the new image goes: the next free slot, a random slot (swap),
    # or nowhere (index `size` is out of range: the update is dropped).
    where = jnp.where(filling, count, jnp.where(swap_i, slot_i, size))
    out = jnp.where(filling | ~swap_i, image, stored[slot_i])
    stored = stored.at[where].set(image, mode="drop")
    return (stored, jnp.minimum(count + 1, size)), out

  (stored, count), out = jax.lax.scan(
      one, (pool["images"], pool["count"]),
      (images.astype(pool["images"].dtype), swap, slot))
  return {"images": stored, "count": count}, out.astype(images.dtype)
