"""SegNet, DeepLabV3+, the CelebA ResNet and the QM9 MPNN at tiny sizes: shapes, the trunk/heads
split, the batch-norm rule of the task steps and one training step with UPGrad each."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from jaxmtl.data import tasks as T
from jaxmtl.models import MPNN, DeepLabV3Plus, ResNet, ResNetHeads, SegNet, shared_mask, task_of
from jaxmtl.models.segnet import max_pool_with_argmax, max_unpool
from jaxmtl.training import make_task_eval_step, make_task_train_step, task_losses

H, W = 32, 32


def dense_batch(b=2, seg=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.normal(size=(b, H, W, 3)).astype(np.float32),
            "segmentation": rng.integers(-1, seg, (b, H, W)).astype(np.int32),
            "depth": rng.uniform(0, 2, (b, H, W, 1)).astype(np.float32),
            "normals": rng.normal(size=(b, H, W, 3)).astype(np.float32)}


DENSE_TASKS = (T.segmentation_task(), T.depth_task(), T.normals_task())


def graph_batch(b=2, n=5):
    rng = np.random.default_rng(0)
    mask = np.arange(n)[None] < np.array([[3], [n]])
    return {"graph": {"nodes": rng.normal(size=(b, n, 6)).astype(np.float32),
                      "edges": rng.normal(size=(b, n, n, 4)).astype(np.float32),
                      "adjacency": (mask[:, :, None] & mask[:, None, :] & ~np.eye(n, dtype=bool)),
                      "node_mask": mask},
            "targets": rng.normal(size=(b, 3)).astype(np.float32)}


CASES = {
    "segnet": (lambda: SegNet(channels=(3, 1, 3), filters=(4, 4, 8, 8, 8)), dense_batch, DENSE_TASKS, "image"),
    "deeplab18": (lambda: DeepLabV3Plus(channels=(3, 1, 3), backbone="resnet18", width=4, aspp_channels=8,
                                        low_channels=4), dense_batch, DENSE_TASKS, "image"),
    "celeba_resnet": (lambda: ResNetHeads(num_tasks=3, stages=(1, 1, 1, 1), width=4),
                      lambda: {"image": np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32),
                               "attributes": np.array([[1, 0, 1], [0, 0, 1]], bool)},
                      T.attribute_tasks(["a", "b", "c"]), "image"),
    "mpnn": (lambda: MPNN(num_tasks=3, features=4, edge_hidden=4, steps=1, readout_steps=1), graph_batch,
             T.regression_tasks(["x", "y", "z"], [1.0, 2.0, 3.0]), "graph"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes_and_trunk_heads_split(name):
    make, make_batch, tasks, key = CASES[name]
    model, batch = make(), make_batch()
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch[key])       # traced, not run
    outputs = jax.eval_shape(model.apply, variables, batch[key])
    assert len(outputs) == len(tasks)
    if name in ("segnet", "deeplab18"):
        assert [o.shape for o in outputs] == [(2, H, W, 3), (2, H, W, 1), (2, H, W, 3)]
    else:
        assert all(o.shape == (2,) for o in outputs)
    mask = shared_mask(variables["params"])
    assert set(variables["params"]) == {"encoder", *(f"head_{t}" for t in range(len(tasks)))}
    assert all(jax.tree.leaves(mask["encoder"])) and not any(jax.tree.leaves(mask["head_0"]))
    owners = task_of(variables["params"])
    assert set(jax.tree.leaves(owners)) == {-1, *range(len(tasks))}
    z = jax.eval_shape(lambda v, x: model.apply(v, x, method="encode"), variables, batch[key])
    decoded = jax.eval_shape(lambda v, z: model.apply(v, z, method="decode"), variables, z)
    assert [o.shape for o in decoded] == [o.shape for o in outputs]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)   # 20 s to minutes to compile
                                  for n in ("mpnn", "segnet", "deeplab18")])
def test_one_upgrad_step_and_representation_gramian(name):
    make, make_batch, tasks, key = CASES[name]
    model, batch = make(), make_batch()
    variables = model.init(jax.random.PRNGKey(0), batch[key])
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared_mask), optax.adam(1e-3))
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask, input_key=key)
    new, _, losses = step(variables, tx.init(variables["params"]), batch, jax.random.PRNGKey(1))
    assert losses.shape == (len(tasks),) and np.all(np.isfinite(losses))
    assert set(new) == set(variables)
    if "batch_stats" in variables:  # the batch-norm rule: one update, from one forward pass on the batch
        _, once = model.apply(variables, batch[key], train=True, mutable=["batch_stats"])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     new["batch_stats"], once["batch_stats"])
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new["params"], variables["params"])
    assert any(jax.tree.leaves(changed["encoder"])) and any(jax.tree.leaves(changed["head_0"]))

    @jax.jit
    def rep_gramian(variables, batch):   # representation Gramian of the encode/decode split
        z = model.apply(variables, batch[key], method="encode")
        return jaxmtl.representation_gramian(
            lambda rep: task_losses(model.apply(variables, rep, method="decode"), batch, tasks))(z)

    losses_rep, gram = rep_gramian(variables, batch)
    np.testing.assert_allclose(losses_rep, losses, rtol=1e-5, atol=1e-6)
    assert gram.shape == (len(tasks), len(tasks))
    assert np.all(np.linalg.eigvalsh(np.asarray(gram, np.float64)) > -1e-4 * float(jnp.trace(gram)))


@pytest.mark.slow  # ~35 s on 2 CPU cores
def test_batch_norm_rule_and_a_task_without_labels():
    """ResNet with batch norm, task b unlabelled in the batch: the statistics are updated once,
    from the one forward pass; task b's loss is 0 and its head does not move; evaluation
    counts no example for task b."""
    model = ResNetHeads(num_tasks=2, stages=(1, 1, 1, 1), width=2)
    tasks = T.attribute_tasks(["a", "b"])
    rng = np.random.default_rng(0)
    batch = {"image": rng.normal(size=(3, 8, 8, 3)).astype(np.float32),
             "attributes": rng.integers(0, 2, (3, 2)).astype(bool),
             "attributes_mask": np.array([[True, False]] * 3)}
    variables = model.init(jax.random.PRNGKey(0), batch["image"])
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared_mask), optax.sgd(0.1))
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask)
    new, _, losses = step(variables, tx.init(variables["params"]), batch, jax.random.PRNGKey(1))
    assert float(losses[1]) == 0.0 and np.isfinite(float(losses[0]))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(new))
    np.testing.assert_array_equal(new["params"]["head_1"]["kernel"], variables["params"]["head_1"]["kernel"])
    _, once = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, batch["image"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 new["batch_stats"], once["batch_stats"])
    assert not np.allclose(new["batch_stats"]["encoder"]["BatchNorm_0"]["mean"],
                           variables["batch_stats"]["encoder"]["BatchNorm_0"]["mean"])
    _, stats = make_task_eval_step(model.apply, tasks)(new, batch)    # running averages (train=False)
    assert int(stats[1][0]["count"]) == 0 and int(stats[0][0]["count"]) == 3


def test_dilated_resnet_strides_and_segnet_unpooling():
    x = jnp.zeros((1, 64, 64, 3))
    for stride, sizes in ((32, [16, 8, 4, 2]), (16, [16, 8, 4, 4]), (8, [16, 8, 8, 8])):
        net = ResNet((1, 1, 1, 1), "bottleneck", 2, output_stride=stride)
        feats = jax.eval_shape(lambda x: net.init_with_output(jax.random.PRNGKey(0), x)[0], x)
        assert [f.shape[1] for f in feats] == sizes
        assert feats[-1].shape[-1] == 2 * 8 * 4
    v = jnp.array([[1.0, 5.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    pooled, where = max_pool_with_argmax(v)
    assert float(pooled[0, 0, 0, 0]) == 5.0
    np.testing.assert_array_equal(max_unpool(pooled, where)[0, ..., 0], [[0, 5], [0, 0]])
    with pytest.raises(ValueError, match="even"):
        max_pool_with_argmax(jnp.zeros((1, 3, 4, 1)))
    with pytest.raises(ValueError, match="backbone"):
        jax.eval_shape(DeepLabV3Plus(backbone="vgg").init, jax.random.PRNGKey(0), x)
