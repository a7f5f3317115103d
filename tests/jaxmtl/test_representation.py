"""The representation step (paper C's placement of IMTL, MGDA-UB and GradDrop) against closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from jaxmtl.models import MixedLeNet
from tests.small_models import SMALL_TASKS, small_batch, SmallTwoHeads
from jaxmtl.training import make_task_train_step
from jaxmtl.training.representation import (RepresentationState, loss_scale_weights,
                                            make_representation_train_step, split_at)

TASKS = SMALL_TASKS


def setup(dropout=0.3):
    """MixedLeNet (paper C's model) for the eager checks."""
    model = MixedLeNet(heads=("classify", "reconstruct"), dropout=dropout)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(6, 28, 28, 1)), jnp.float32)
    batch = {"image": x, "label_l": jnp.asarray(rng.integers(0, 10, 6)),
             "target": jnp.asarray(rng.normal(size=(6, 28, 28)), jnp.float32)}
    return model, model.init(jax.random.PRNGKey(0), x), batch


def small(dropout=0.0):
    """A two-layer trunk-and-heads model of the same layout, for the jitted steps (fast to compile)."""
    model, batch = SmallTwoHeads(dropout=dropout), small_batch(0)
    return model, model.init(jax.random.PRNGKey(0), batch["image"]), batch


def test_split_at_rebuilds_the_outputs_and_names_a_missing_module():
    model, variables, batch = setup()
    kw = dict(train=True, rngs={"dropout": jax.random.PRNGKey(3)})
    encode, decode = split_at(model.apply, "encoder")
    z, _ = encode(variables, batch["image"], **kw)
    assert z.shape == (6, 50)
    out, _ = decode(variables, z, batch["image"], **kw)
    for a, b in zip(out, model.apply(variables, batch["image"], **kw)):
        np.testing.assert_array_equal(a, b)       # same dropout masks in the heads
    with pytest.raises(ValueError, match="no top-level submodule named 'trunk'"):
        split_at(model.apply, "trunk")[0](variables, batch["image"], **kw)


def test_a_sum_at_the_representation_is_the_plain_sum_step():
    """``J_theta^T 1 = (dz/dtheta)^T J_z^T 1``: EW at the representation equals EW on the parameters."""
    model, variables, batch = small(dropout=0.3)
    rng = jax.random.PRNGKey(5)
    init, step = make_representation_train_step(model.apply, jaxmtl.linear(), optax.sgd(0.1), TASKS)
    new, state, losses = step(variables, init(variables["params"]), batch, rng)
    ref_tx = optax.chain(jaxmtl.partition(jaxmtl.linear(), lambda p: jax.tree.map(lambda _: True, p)), optax.sgd(0.1))
    ref_step = make_task_train_step(model.apply, ref_tx, TASKS, shared=None)
    ref, _, ref_losses = ref_step(variables, ref_tx.init(variables["params"]), batch, rng)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), new, ref)
    assert isinstance(state, RepresentationState)


def test_mgda_weights_come_from_the_representation_gramian_and_reach_the_trunk():
    """The trunk's gradient is ``sum_t w_t g_t`` (parameter gradients) with ``w`` MGDA's weights of
    the representation Jacobian; the heads get the plain sum."""
    model, variables, batch = small()
    params = variables["params"]

    def probe(task_grads, _):
        return task_grads["encoder"]

    init, step = make_representation_train_step(model.apply, jaxmtl.mgda(num_tasks=2), optax.sgd(1.0), TASKS, probe=probe)
    new, state, losses, jz = step(variables, init(params), batch, jax.random.PRNGKey(0))
    flat = np.asarray(jz, np.float64).reshape(2, -1)
    w = np.asarray(jaxmtl.recorded_weights(state))
    # MGDA on two tasks, in closed form: the min-norm point of the segment [g1, g2]
    g1, g2 = flat
    a = np.clip((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0, 1)
    np.testing.assert_allclose(w, [a, 1 - a], atol=1e-5)
    per_task = jax.jacrev(lambda p: jnp.stack([
        t.loss(o, *t.labels(batch)) for t, o in zip(TASKS, model.apply({"params": p}, batch["image"]))]))(params)
    enc = jax.tree.map(lambda g: jnp.tensordot(jnp.asarray(w, g.dtype), g, 1), per_task["encoder"])
    heads = {k: jax.tree.map(lambda g: g.sum(0), per_task[k]) for k in ("head_0", "head_1")}
    expected = jax.tree.map(lambda p, g: p - g, params, {"encoder": enc, **heads})
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6), new["params"], expected)


def test_imtl_heads_are_weighted_by_its_loss_scales():
    model, variables, batch = small()
    init, step = make_representation_train_step(model.apply, jaxmtl.imtl(lr=0.5, num_tasks=2), optax.sgd(1.0),
                                                TASKS, head_weights=loss_scale_weights)
    state = init(variables["params"])
    for i in range(2):   # after one step the scales have moved from 1
        variables, state, losses = step(variables, state, batch, jax.random.PRNGKey(i))
    e = np.exp(np.asarray(jaxmtl.protocol.find_method_state(state).log_scale))
    assert not np.allclose(e, 1.0)
    np.testing.assert_allclose(loss_scale_weights(state), e, rtol=1e-6)


def test_graddrop_at_the_representation_draws_one_sign_per_feature():
    rng = np.random.default_rng(1)
    g = jnp.asarray(rng.normal(size=(2, 8, 5)), jnp.float32)                     # (T, batch, features)
    z = jnp.abs(jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)).at[0].set(0.0)  # ReLU output, row 0 zero
    gn = np.asarray(g)
    pos, neg = np.where(gn > 0, gn, 0).sum(0), np.where(gn < 0, gn, 0).sum(0)
    for seed in range(4):
        tx = jaxmtl.graddrop(batch_axes=(0,), input_sign=True, seed=seed)
        d = np.asarray(tx.update(g, tx.init(None), z)[0])
        np.testing.assert_array_equal(d[0], 0.0)         # the activation's sign is 0: nothing kept
        for f in range(5):                              # one kept sign per feature, for every batch row
            assert (np.allclose(d[1:, f], pos[1:, f], atol=1e-6) or np.allclose(d[1:, f], neg[1:, f], atol=1e-6)), f
        tx = jaxmtl.graddrop(batch_axes=(0,), input_sign=True, renormalize=True, seed=seed)
        r = np.asarray(tx.update(g, tx.init(None), z)[0])
        np.testing.assert_allclose(r, d * np.linalg.norm(gn.sum(0)) / np.linalg.norm(d), rtol=1e-5)
    with pytest.raises(ValueError, match="params argument"):
        tx.update(g, tx.init(None))
    with pytest.raises(ValueError, match="batch_axes"):
        jaxmtl.graddrop(batch_axes=(-1,))


def test_rotated_heads_read_the_rotated_representation_and_the_rotations_learn():
    from jaxmtl.aggregators.rotograd import rotation_matrices
    from jaxmtl.training.representation import ROTATIONS, rotated, with_rotations
    model, variables, batch = small()
    params = with_rotations(variables, model.apply, batch["image"], "encoder", 2)
    assert params[ROTATIONS].shape == (2, 8, 8)
    skew = jnp.asarray(np.random.default_rng(4).normal(size=(2, 8, 8)), jnp.float32)
    params = {**params, ROTATIONS: skew}
    apply = rotated(model.apply, ["head_0", "head_1"])
    out = apply({"params": params}, batch["image"])
    encode, decode = split_at(model.apply, "encoder")
    z, _ = encode({"params": variables["params"]}, batch["image"])
    rot = rotation_matrices(skew)
    for t in range(2):
        manual, _ = decode({"params": variables["params"]}, z @ rot[t].T, batch["image"])
        np.testing.assert_allclose(out[t], manual[t], rtol=1e-4, atol=1e-5)
    # one step: the rotations move by their own optimiser only (the model's decay leaves them alone)
    tx = optax.chain(optax.add_decayed_weights(0.5), optax.sgd(0.1))
    init, step = make_representation_train_step(apply, jaxmtl.rotograd(num_tasks=2), tx, TASKS,
                                                rotation_tx=optax.sgd(0.0))
    new, state, _ = step({"params": params}, init(params), batch, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(new["params"][ROTATIONS], skew)
    init, step = make_representation_train_step(apply, jaxmtl.rotograd(num_tasks=2), tx, TASKS,
                                                rotation_tx=optax.sgd(1.0))
    new, state, _ = step({"params": params}, init(params), batch, jax.random.PRNGKey(0))
    assert not np.allclose(new["params"][ROTATIONS], skew)
    assert state.rotations is not None
