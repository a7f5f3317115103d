"""Cityscapes instance offsets (Kendall et al. 2018): offsets, loss/metric masking, loaders, augmentation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments.datasets import _dense_channels, _dense_tasks
from jaxmtl import metrics as M
from jaxmtl.data import dense_batches, instance_task, load_cityscapes, random_scale_crop
from jaxmtl.data.cityscapes import instance_offsets, read_instance_ids
from jaxmtl.data.dense import resize_nearest
from tests.fake_datasets import cityscapes_layout, fake_sources, gtfine_instances


def two_rectangles():
    ids = np.full((6, 8), 7)                 # road (stuff)
    ids[0:2, 0:3] = 26000                    # car 0: rows 0-1, cols 0-2 -> centroid (0.5, 1)
    ids[3:6, 4:8] = 26001                    # car 1: rows 3-5, cols 4-7 -> centroid (4, 5.5)
    ids[5, 0:2] = 26                         # a car group: no instance id
    return ids


def test_offsets_of_two_rectangles():
    ids = two_rectangles()
    offsets, mask = instance_offsets(ids)
    assert offsets.shape == (6, 8, 2) and offsets.dtype == np.float32 and mask.dtype == bool
    np.testing.assert_array_equal(mask, ids >= 1000)
    rows, cols = np.mgrid[0:6, 0:8]
    for inst, (cy, cx) in ((26000, (0.5, 1.0)), (26001, (4.0, 5.5))):
        sel = ids == inst
        np.testing.assert_allclose(offsets[sel, 0], cy - rows[sel])
        np.testing.assert_allclose(offsets[sel, 1], cx - cols[sel])
        np.testing.assert_allclose((rows + offsets[..., 0])[sel], cy)     # every pixel points at the centroid
    assert not offsets[~mask].any()
    assert not instance_offsets(np.full((3, 4), 24))[1].any()          # no instance at all
    np.testing.assert_array_equal(instance_offsets(ids[..., None])[0], offsets)


def test_loss_and_metric_ignore_masked_pixels():
    target, mask = instance_offsets(two_rectangles())
    target = np.where(mask[..., None], target, np.nan)[None]             # NaN off instances
    pred = np.zeros_like(target)
    pred[0, ~mask] = 1e6                                                 # garbage where nothing counts
    expected = np.nansum(np.abs(target), -1)[0][mask].mean()
    task = instance_task()
    assert task.higher_is_better == {"offset_err": False} and task.mask == "instance_mask"
    batch = {"instance": target, "instance_mask": mask[None]}
    t, m = task.labels(batch)
    np.testing.assert_allclose(task.loss(pred, t, m), expected, rtol=1e-6)
    np.testing.assert_allclose(task.metrics[0](pred, t, m), expected, rtol=1e-6)
    np.testing.assert_allclose(M.l1_offset_loss(pred, np.nan_to_num(target), mask[None]), expected, rtol=1e-6)
    grad = jax.grad(lambda p: task.loss(p, t, m))(jnp.asarray(pred))
    assert np.all(np.isfinite(grad)) and not np.asarray(grad)[0, ~mask].any()
    assert float(task.loss(pred, t, np.zeros_like(m))) == 0.0                # nothing labelled
    assert np.isnan(task.metrics[0](pred, t, np.zeros_like(m)))


def test_scale_crop_scales_offsets_and_shifts_nothing():
    h, w = 8, 16
    ids = np.full((h, w), 7)
    ids[1:6, 2:9], ids[4:8, 10:15] = 26000, 24001
    offsets, mask = instance_offsets(ids)
    ex = {"image": np.zeros((h, w, 3), np.float32), "segmentation": np.arange(h * w).reshape(h, w),
          "instance": offsets, "instance_mask": mask}
    same = random_scale_crop(ex, np.random.default_rng(0), scales=(1.0,))
    np.testing.assert_array_equal(same["instance"], offsets)
    for s, factor in ((2.0, (2.0, 2.0)), (1.5, (8 / 5, 16 / 10))):
        for seed in range(4):
            out = random_scale_crop(ex, np.random.default_rng(seed), scales=(s,))
            src = np.unravel_index(out["segmentation"], (h, w))      # the source pixel of each output pixel
            np.testing.assert_array_equal(out["instance_mask"], mask[src])
            np.testing.assert_allclose(out["instance"], offsets[src] * np.asarray(factor), rtol=1e-6)


@pytest.mark.parametrize("kind", ["ids", "offsets"])
def test_numpy_layout_instance(kind, tmp_path):
    root = cityscapes_layout(tmp_path, hw=(128, 256), n_train=3, n_val=2, instance=kind)
    data = load_cityscapes(root, val_fraction=0.34, tasks=("segmentation", "depth", "instance"))
    assert data.tasks == ("segmentation", "depth", "instance")
    raw = np.load(root / "val" / "instance" / "1.npy")
    if kind == "ids":
        want, want_mask = instance_offsets(raw)
    else:
        want_mask = np.all(np.isfinite(raw), -1)
        want = np.where(want_mask[..., None], raw, 0)
    ex = data.test.example(1)
    np.testing.assert_array_equal(ex["instance_mask"], want_mask)
    np.testing.assert_allclose(ex["instance"], want, atol=1e-5)
    big = load_cityscapes(root, size=(256, 512), val_fraction=0.34, tasks=("instance",))
    ex = big.test.example(1)
    assert set(ex) == {"image", "instance", "instance_mask"} and big.tasks == ("instance",)
    if kind == "ids":     # ids resized (nearest), offsets computed in the 256x512 image
        want, want_mask = instance_offsets(resize_nearest(raw, (256, 512)))
    else:                 # offsets resized and doubled
        want, want_mask = resize_nearest(want, (256, 512)) * 2, resize_nearest(want_mask, (256, 512))
    np.testing.assert_array_equal(ex["instance_mask"], want_mask)
    np.testing.assert_allclose(ex["instance"], want, atol=1e-5)
    batch = next(dense_batches(data.train, 2, np.random.default_rng(0), augment=True))
    assert batch["instance"].shape == (2, 128, 256, 2) and batch["instance_mask"].shape == (2, 128, 256)
    assert batch["instance"].dtype == np.float32 and batch["instance_mask"].dtype == bool
    assert np.isfinite(batch["instance"]).all() and not batch["instance"][~batch["instance_mask"]].any()


def test_tfds_with_gtfine_instance_ids(tmp_path):
    gtfine = gtfine_instances(tmp_path, 3, (32, 64))
    with tfds.testing.mock_data(as_data_source_fn=fake_sources(3, (32, 64))):
        data = load_cityscapes(source="tfds", manual_dir=tmp_path, val_fraction=0.34,
                               tasks=("segmentation", "depth", "instance"))
        depthless = load_cityscapes(source="tfds", gtfine_dir=gtfine, val_fraction=0.34, tasks=("instance",))
    ids = read_instance_ids(gtfine / "val" / "validation" / "validation_0_gtFine_instanceIds.png")
    assert ids.shape == (32, 64) and ids.max() >= 24000
    want, want_mask = instance_offsets(resize_nearest(ids, (128, 256)))     # after resizing
    for d in (data, depthless):
        ex = d.test.example(0)
        np.testing.assert_array_equal(ex["instance_mask"], want_mask)
        np.testing.assert_allclose(ex["instance"], want, atol=1e-5)
    assert data.test.example(0)["depth"].shape == (128, 256, 1) and "depth" not in depthless.test.example(0)


def test_instance_unavailable_says_what_and_where(tmp_path, monkeypatch):
    root = cityscapes_layout(tmp_path / "mtan", hw=(128, 256), n_train=2, n_val=1)
    with pytest.raises(ValueError, match=r"(?s)no .*mtan/train/instance/<i>\.npy.*gtfine_dir"):
        load_cityscapes(root, tasks=("segmentation", "instance"))
    assert load_cityscapes(root, val_fraction=0.5).tasks == ("segmentation", "depth")     # default unchanged
    with pytest.raises(ValueError, match=r"(?s)no gtfine_dir.*carry no instance ids"):
        load_cityscapes(source="tfds", tasks=("instance",))
    with pytest.raises(ValueError, match=r"(?s)no folder .*zips/gtFine/train"):
        load_cityscapes(source="tfds", manual_dir=tmp_path / "zips", tasks=("instance",))
    gtfine = gtfine_instances(tmp_path, 2, (32, 64))           # 2 PNGs per split for 3 images
    with tfds.testing.mock_data(as_data_source_fn=fake_sources(3, (32, 64))):
        with pytest.raises(ValueError, match=r"(?s)1 of 3 are missing.*train_2_gtFine_instanceIds\.png"):
            load_cityscapes(source="tfds", gtfine_dir=gtfine, tasks=("segmentation", "instance"))
    with pytest.raises(ValueError, match="tasks"):
        load_cityscapes(root, tasks=("segmentation", "normals"))


def test_registry_gives_the_instance_head_two_channels():
    class Meta:
        tasks, num_classes = ("segmentation", "depth", "instance"), 7

    assert _dense_channels(Meta) == (7, 1, 2)
    tasks = _dense_tasks(Meta)
    assert [t.name for t in tasks] == list(Meta.tasks) and tasks[2].metrics[0].name == "offset_err"


@pytest.mark.slow
def test_train_and_evaluate_with_the_instance_head(tmp_path):
    """Two UPGrad steps and an evaluation of the tiny SegNet on the three tasks (about 1 min on 2 busy cores)."""
    import optax

    import jaxmtl
    from experiments.datasets import get
    from jaxmtl.data import prefetch
    from jaxmtl.models import shared_mask
    from jaxmtl.training import evaluate_tasks, make_task_eval_step, make_task_train_step

    bench = get("cityscapes")
    root = cityscapes_layout(tmp_path, hw=(128, 256), n_train=5, n_val=2, instance="ids")
    data = bench.load(root, val_fraction=0.4, tasks=("segmentation", "depth", "instance"))
    model, tasks = bench.model(data, "segnet", tiny=True), bench.tasks(data)
    train = list(bench.batches(data.train, 2, np.random.default_rng(0)))
    variables = model.init(jax.random.PRNGKey(0), train[0]["image"])
    assert model.apply(variables, train[0]["image"])[2].shape == (2, 128, 256, 2)
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared_mask), optax.adam(1e-3))
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask, input_key="image")
    opt_state = tx.init(variables["params"])
    for i, batch in enumerate(prefetch(train[:2])):
        variables, opt_state, losses = step(variables, opt_state, batch, jax.random.PRNGKey(i))
        assert losses.shape == (3,) and np.all(np.isfinite(losses))
    ev = make_task_eval_step(model.apply, tasks, input_key="image")
    result = evaluate_tasks(ev, variables, bench.batches(data.val, 2, drop_last=False), tasks, "image")
    assert set(result["instance"]) == {"loss", "offset_err"} and np.isfinite(result["instance"]["offset_err"])
