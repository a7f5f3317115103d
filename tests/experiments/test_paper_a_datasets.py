"""Paper A's studies on the paper's benchmarks, end to end on fake files of their layouts: A3
(conflicts) on Cityscapes and CelebA, A4 (corruptions) on NYUv2 and Cityscapes, A1 on both dense
sets. The default runs use a one-layer model in the benchmark's place (a conv + batch norm
encoder, a conv per task: the studies' plumbing in seconds); the ``slow`` ones the papers'
SegNet and DeepLabV3+ (tiny)."""
from __future__ import annotations

import dataclasses
import itertools
import json

import flax.linen as nn
import jax
import numpy as np
import pytest

import jaxmtl.data.cityscapes as cityscapes_module
import jaxmtl.data.nyuv2 as nyuv2_module
from experiments import runs, selection
from experiments.datasets import DATASETS
from experiments.paper_a import conflicts, corruptions, optimizer_study, tuning
from jaxmtl.data import ATTRIBUTES, CORRUPTIONS, SEVERITIES, attribute_tasks
from jaxmtl.models.deeplab import ConvBNReLU
from jaxmtl.training import task_losses
from tests.experiments.test_compare_methods_datasets import run_compare
from tests.fake_datasets import cityscapes_layout, fake_tfds, nyuv2_layout

SIZE = (32, 64)
"""The fake images' size, loaded as is (the loaders' paper sizes patched to it)."""


class Encoder(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        return ConvBNReLU(2)(x, train)


class ConvHeads(nn.Module):
    """A shared conv + batch norm, one 1x1 conv per task (``channels[t]`` outputs); ``pooled``:
    each head a scalar per image (CelebA's attribute logits)."""

    channels: tuple[int, ...]
    pooled: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        z = Encoder(name="encoder")(x, train)
        if self.pooled:
            z = z.mean(axis=(1, 2))
            return tuple(nn.Dense(1, name=f"head_{t}")(z)[:, 0] for t in range(len(self.channels)))
        return tuple(nn.Conv(c, (1, 1), name=f"head_{t}")(z) for t, c in enumerate(self.channels))


def one_layer_model(name: str, monkeypatch, attributes: int = 40) -> None:
    """:class:`ConvHeads` as ``name``'s model (the loader and batches unchanged; CelebA's first
    ``attributes`` tasks)."""
    def model(data, arch=None, tiny=False, dropout=0.0, tasks=None):
        if name == "celeba":
            return ConvHeads((1,) * attributes, pooled=True)
        return ConvHeads(tuple({"segmentation": data.num_classes, "depth": 1, "normals": 3}[t]
                               for t in (tasks or data.tasks)))

    changes = dict(model=model)
    if name == "celeba":
        changes["tasks"] = lambda data, names=None: attribute_tasks(ATTRIBUTES[:attributes])
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], **changes))


def fake_dense(name: str, tmp_path, monkeypatch) -> list[str]:
    """``--data-dir`` of ``name``'s fake files (8 training, 4 test images of :data:`SIZE`), the
    loader's size patched to :data:`SIZE`."""
    if name == "cityscapes":
        monkeypatch.setattr(cityscapes_module, "SIZES", (*cityscapes_module.SIZES, SIZE))
        tiny = DATASETS[name].protocols["paper_a"]["tiny"]
        monkeypatch.setitem(DATASETS[name].protocols["paper_a"], "tiny", dict(tiny, data=dict(tiny["data"], size=SIZE)))
        return ["--data-dir", str(cityscapes_layout(tmp_path / "c", hw=SIZE, n_train=8, n_val=4))]
    monkeypatch.setattr(nyuv2_module, "SIZE", SIZE)
    return ["--data-dir", str(nyuv2_layout(tmp_path / "n", hw=SIZE, n_train=8, n_val=4))]


def records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _fail(*args, **kwargs):
    raise AssertionError("a finished step was run again")


def run_conflicts(name, tmp_path, monkeypatch, argv=()):
    out = tmp_path / "a3"
    args = ["--preset", "tiny", "--dataset", name, "--tiny-model", "--out", str(out), *argv]
    if name != "celeba":
        args += fake_dense(name, tmp_path, monkeypatch)
    with fake_tfds(name):
        assert conflicts.main(args) == 0
    record, = records(out)
    return out, record


def test_conflicts_on_cityscapes(tmp_path, monkeypatch):
    one_layer_model("cityscapes", monkeypatch)
    out, record = run_conflicts("cityscapes", tmp_path, monkeypatch)
    assert record["spec"]["dataset"] == "cityscapes" and record["tasks"] == ["segmentation", "depth"]
    epoch, = record["conflicts"]["epochs"]   # 4 training images, batch 2: 2 steps, statistics at step 0
    assert epoch["inter_task"]["cosine"]["n"] == 2                # 2 samples x 1 task pair
    assert epoch["inter_sample"]["cosine"]["n"] == 2              # 2 tasks x 1 sample pair
    assert epoch["inter_task_batch"]["dot"]["n"] == epoch["inter_sample_batch"]["dot"]["n"] == 1
    for group in conflicts.GROUPS:   # every variant: cosine, magnitude, dot, coordinates of opposite sign
        assert set(epoch[group]) == set(conflicts.STATISTICS)
        assert -1 <= epoch[group]["cosine"]["mean"] <= 1 and 0 <= epoch[group]["sign_conflict"]["mean"] <= 1
    summary = (out / "summary.md").read_text()
    assert "on Cityscapes" in summary and "the tasks segmentation, depth;" in summary
    assert conflicts.verdict(record["conflicts"]["overall"])[2] in summary
    assert "segmentation miou" in summary   # the validation column: each task's primary metric
    monkeypatch.setattr(runs, "train_run", _fail)
    assert conflicts.main(["--preset", "tiny", "--dataset", "cityscapes", "--tiny-model", "--out", str(out),
                           *fake_dense("cityscapes", tmp_path / "again", monkeypatch)]) == 0


@pytest.mark.parametrize("attributes", [10, pytest.param(40, marks=pytest.mark.slow)])  # slow: 40 heads compile
def test_conflicts_on_celeba_probe_eight_tasks_drawn_once(attributes, tmp_path, monkeypatch):
    one_layer_model("celeba", monkeypatch, attributes)
    out, record = run_conflicts("celeba", tmp_path, monkeypatch, ["--task-seed", "3"])
    drawn = conflicts.probed_tasks(attributes, 3)
    assert len(drawn) == 8 and drawn == sorted(set(drawn)) and drawn != conflicts.probed_tasks(attributes, 0)
    assert max(conflicts.probed_tasks(40, 3)) >= 10 and conflicts.probed_tasks(2, 3) == [0, 1]
    assert len(record["tasks"]) == attributes and record["key"].endswith("-tasks3")   # EW trains all
    epoch, = record["conflicts"]["epochs"]   # 32 images, batch 8: 4 steps, statistics at 0 and 2
    assert epoch["inter_task"]["cosine"]["n"] == 2 * 8 * 28       # 8 samples x C(8, 2) task pairs
    assert epoch["inter_sample"]["cosine"]["n"] == 2 * 8 * 28     # 8 tasks x C(8, 2) sample pairs
    summary = (out / "summary.md").read_text()
    names = ", ".join(ATTRIBUTES[t] for t in drawn)
    assert f"the 8 tasks {names}, drawn from the {attributes} with --task-seed 3 (EW trains all {attributes})" in summary
    assert "| 1 |" in summary   # the validation column: mean accuracy


def test_conflict_probe_takes_evaluation_mode_gradients_of_the_encoder():
    """The probe's per-sample gradients are those of each sample's own loss, batch norm on the
    running statistics given (not the batch's)."""
    model, tasks = ConvHeads((3, 1)), DATASETS["cityscapes"].tasks(
        type("D", (), {"tasks": ("segmentation", "depth"), "num_classes": 3})())
    rng = np.random.default_rng(0)
    batch = {"image": rng.random((4, 8, 8, 3), np.float32), "segmentation": rng.integers(0, 3, (4, 8, 8)),
             "depth": rng.random((4, 8, 8, 1), np.float32)}
    variables = model.init(jax.random.PRNGKey(0), batch["image"])
    variables = {**variables, "batch_stats": jax.tree.map(lambda v: v + 0.3, variables["batch_stats"])}
    probe = conflicts.ConflictProbe(model, tasks, "image", [0, 1], every=1, seed=0)
    probe.on_step(0, variables, batch, None)
    got = probe.current["inter_sample"]["cosine"]

    @jax.jit
    def grads(params, one):   # (tasks, encoder entries): each task's loss on one sample, evaluation mode
        losses = lambda p: task_losses(model.apply({**variables, "params": p}, one["image"]), one, tasks)
        g = jax.jacrev(losses)(params)["encoder"]
        return jax.numpy.concatenate([x.reshape(2, -1) for x in jax.tree.leaves(g)], axis=1)

    per_sample = np.stack([grads(variables["params"], jax.tree.map(lambda v: v[s:s + 1], batch)) for s in range(4)])
    want = [float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))   # all 4 samples drawn (at most 8)
            for t in (0, 1) for a, b in itertools.combinations(per_sample[:, t], 2)]
    np.testing.assert_allclose(sorted(got), sorted(want), rtol=1e-4, atol=1e-5)


def run_corruptions(name, tmp_path, monkeypatch, argv=()):
    out = tmp_path / "a4"
    args = ["--preset", "tiny", "--dataset", name, "--tiny-model", "--out", str(out), *argv,
            *fake_dense(name, tmp_path, monkeypatch)]
    assert corruptions.main(args) == 0
    return out, args


def test_corruptions_on_nyuv2(tmp_path, monkeypatch):
    one_layer_model("nyuv2", monkeypatch)
    out, args = run_corruptions("nyuv2", tmp_path, monkeypatch)
    rec = records(out)
    tested = {r["model"]: r for r in rec if "model" in r}
    assert sorted(tested) == ["ew/s0", "stl0/s0", "stl1/s0", "stl2/s0"]
    assert tested["ew/s0"]["metric"] == ["miou", "abs_err", "mean_angle"]
    assert tested["stl2/s0"]["tasks_scored"] == [2] and tested["stl2/s0"]["metric"] == ["mean_angle"]
    for r in tested.values():
        assert set(r["corrupted"]) == set(CORRUPTIONS)
        assert all(len(v) == len(SEVERITIES) and len(v[0]) == len(r["tasks_scored"]) for v in r["corrupted"].values())
    summary = (out / "summary.md").read_text()
    assert "on NYUv2" in summary and "(colour images; frost left out" in summary
    assert "| EW | normals |" in summary and "| mean_angle |" in summary
    # fine-tuning moved the heads only: the encoder's parameters and batch-norm statistics are the clean model's
    tuned_file, = (out / "models").glob("ew_*-ft1.msgpack")
    clean, tuned = (serialization_of(p) for p in (tuned_file.with_name(tuned_file.name.replace("-ft1", "")), tuned_file))
    for part in ("params", "batch_stats"):
        np.testing.assert_array_equal(*(np.concatenate([np.ravel(x) for x in jax.tree.leaves(v[part]["encoder"])])
                                        for v in (clean, tuned)))
    assert not np.allclose(clean["params"]["head_0"]["kernel"], tuned["params"]["head_0"]["kernel"])
    monkeypatch.setattr(corruptions, "train_run", _fail)
    monkeypatch.setattr(corruptions, "fine_tune", _fail)
    monkeypatch.setattr(corruptions, "test_all", _fail)
    assert corruptions.main(args) == 0
    assert (out / "summary.md").read_text() == summary


def serialization_of(path):
    from flax import serialization

    return serialization.msgpack_restore(path.read_bytes())


def test_corruptions_refuse_data_without_images_in_0_1(capsys):
    with pytest.raises(SystemExit):
        corruptions.main(["--dataset", "qm9"])
    assert "runs on multi_fashion, cityscapes, nyuv2, celeba only: it corrupts images in [0, 1]: QM9's inputs " \
           "are molecular graphs" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cityscapes", pytest.param("nyuv2", marks=pytest.mark.slow)])   # nyuv2: 3 tasks
def test_optimizer_study_on_dense_data(name, tmp_path, monkeypatch):
    """A1 as Tables A4-A7: per-metric delta-m over every metric of the tasks, each with its direction."""
    one_layer_model(name, monkeypatch)
    monkeypatch.setattr(cityscapes_module, "SIZES", (*cityscapes_module.SIZES, SIZE))
    monkeypatch.setattr(nyuv2_module, "SIZE", SIZE)
    recs, summary = run_compare(name, tmp_path, monkeypatch, study=optimizer_study, argv=["--per-task", "--lrs", "1e-3"])
    tasks = {"cityscapes": ["segmentation", "depth"], "nyuv2": ["segmentation", "depth", "normals"]}[name]
    assert len(recs) == len(tasks) + 1 and recs[0]["tasks"] == tasks
    assert "| EW |" in summary and "test miou segmentation" in summary and "test abs_err depth" in summary
    directions = recs[0]["directions"]
    assert directions["miou"] and not directions["abs_err"]
    if name == "nyuv2":
        assert not directions["mean_angle"] and directions["within_11.25"]
    # Tables A4-A7: every metric of every task, and delta-m as the sum of the metrics' terms
    table = summary.split("## Every test metric (Paper A's Tables A4–A7)")[1].split("\n\n")[1]
    header, _, stl, ew = table.splitlines()
    cols = [f"{t} {m}" for t in tasks for m in recs[0]["metrics"][t]]
    assert [c.rsplit(" ", 1)[0] for c in header.split(" | ")[2:-2]] == cols
    chosen = tuning.select_runs(recs)[("ew", "adam")]["runs"][0]
    base = selection.stl_baselines(recs)[1][0]
    terms = optimizer_study.metric_terms(chosen, base, directions)
    assert sum(terms.values()) == pytest.approx(chosen["test_dm"])
    top = max(terms, key=lambda k: abs(terms[k]))
    assert ew.endswith(f"| {top[0]} {top[1]} ({terms[top]:+.2f}) |") and stl.startswith("| STL (best) | any |")


@pytest.mark.slow   # SegNet / DeepLabV3+ (tiny): 4-7 min each on the shared 2-core CPU
@pytest.mark.parametrize("study, name, arch", [(conflicts, "cityscapes", "deeplab_resnet18"),
                                               (corruptions, "cityscapes", "segnet"),
                                               (corruptions, "nyuv2", "deeplab_resnet18")])
def test_paper_models(study, name, arch, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert study.main(["--preset", "tiny", "--dataset", name, "--arch", arch, "--tiny-model", "--out", str(out),
                       *fake_dense(name, tmp_path, monkeypatch)]) == 0
    assert arch in (out / "summary.md").read_text()
