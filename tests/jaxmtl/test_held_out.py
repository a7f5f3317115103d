"""Auto-Lambda's held-out train step against the exact meta-gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmtl
from jaxmtl.models import shared_mask, task_of
from jaxmtl.training.held_out import make_held_out_train_step
from tests.small_models import SMALL_TASKS as TASKS, SmallTwoHeads, small_batch as batch_of


def test_lambda_moves_against_the_exact_meta_gradient():
    model = SmallTwoHeads()
    batch, val = batch_of(0), batch_of(1)
    variables = model.init(jax.random.PRNGKey(0), batch["image"])
    params = variables["params"]
    lr, wd, meta_lr = 0.05, 1e-3, 1e-2

    def losses(p, b):
        out = model.apply({"params": p}, b["image"])
        return jnp.stack([t.loss(o, *t.labels(b)) for t, o in zip(TASKS, out)])

    lam0 = jnp.full((2,), 0.1)

    def val_after(lam):   # L_val(theta - lr (grad lam . L + wd theta)), differentiated in lam exactly
        g = jax.grad(lambda p: lam @ losses(p, batch))(params)
        ahead = jax.tree.map(lambda p, u: p - lr * (u + wd * p), params, g)
        return jnp.sum(losses(ahead, val))

    exact = jax.grad(val_after)(lam0)
    method = jaxmtl.auto_lambda(meta_lr, num_tasks=2)
    tx = optax.chain(jaxmtl.partition(method, shared_mask, task_of=task_of), optax.sgd(lr))
    step = make_held_out_train_step(model.apply, tx, TASKS, shared=shared_mask, weight_decay=wd)
    _, state, _ = step(variables, tx.init(params), batch, jax.random.PRNGKey(0), val, jnp.float32(lr))
    lam = np.asarray(jaxmtl.recorded_weights(state))
    # Adam's first step moves each weight by its learning rate against the meta-gradient's sign
    np.testing.assert_allclose(lam, lam0 - meta_lr * np.sign(exact), rtol=1e-3)
    assert np.all(np.abs(np.asarray(exact)) > 1e-6)
