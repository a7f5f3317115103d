"""Paper B study (experiments.paper_b.trajectories and experiments.paper_b.analysis)."""
import json

import numpy as np
import pytest


from experiments.paper_b import analysis as pb
from experiments.paper_b import trajectories
from experiments.runs import shared_rows
from jaxmtl.data.multi_mnist import VAL_SIZE
from tests.conftest import write_fake_fashion_mnist
from tests.experiments.test_compare_methods_datasets import data_args, two_tasks
from tests.fake_datasets import fake_tfds


def traj(steps, train, val, acc=None, cosines=None, inter=None, quantities=None, ck_steps=None):
    """A one-task trajectory in the layout the study logs (``inter``: the cosine of the one pair
    of task gradients, task 0 with a task 1 not logged here)."""
    col = lambda xs: [[float(x)] for x in xs]
    ck_steps = steps if ck_steps is None else ck_steps
    quantities = quantities or {}
    cosines = [] if cosines is None else cosines
    return {"steps": list(steps), "train_loss": col(train), "val_loss": col(val),
            "val_metric": col(acc if acc is not None else np.zeros(len(steps))),
            "checkpoints": {"steps": list(ck_steps),
                            **{q: col(quantities.get(q, np.zeros(len(ck_steps)))) for q in pb.QUANTITIES}},
            "conflict": {"steps": list(range(len(cosines))), "update": col(cosines),
                         "inter": col(inter if inter is not None else np.zeros(len(cosines))),
                         "pairs": [[0, 1]]}}


def test_first_crossing_interpolates_the_first_time_the_level_is_reached():
    steps = [0, 10, 20, 30]
    assert pb.first_crossing(steps, [2.0, 1.5, 1.0, 0.8], 1.2) == pytest.approx(16.0)
    assert pb.first_crossing(steps, [2.0, 1.5, 1.0, 0.8], 1.0) == pytest.approx(20.0)
    assert pb.first_crossing(steps, [2.0, 1.5, 1.0, 0.8], 2.5) == 0.0
    assert pb.first_crossing(steps, [2.0, 1.5, 1.0, 0.8], 0.5) is None
    # not monotone: the first crossing (between 0 and 10) counts, not the later one
    assert pb.first_crossing(steps, [2.0, 1.0, 1.5, 0.5], 1.2) == pytest.approx(8.0)


def test_gap_is_taken_at_equal_training_loss_not_at_equal_step():
    steps = np.arange(0, 101, 10)
    stl_train = 2.0 * np.exp(-steps / 30)
    mtl_train = 2.0 * np.exp(-steps / 60)  # MTL trains twice as slowly
    stl = traj(steps, stl_train, stl_train + 0.1, acc=1 - stl_train / 4)
    mtl = traj(steps, mtl_train, mtl_train + 0.3, acc=1 - mtl_train / 4 - 0.05)
    for level in (1.5, 1.0, 0.6):
        assert pb.gap_at(stl, mtl, 0, level) == pytest.approx(0.2, abs=1e-9)
        assert pb.gap_at(stl, mtl, 0, level, "val_metric") == pytest.approx(-0.05, abs=1e-9)
    step_mtl, _ = pb.at_level(mtl, 0, 1.0, "val_loss")
    step_stl, _ = pb.at_level(stl, 0, 1.0, "val_loss")
    assert step_mtl == pytest.approx(2 * step_stl, rel=0.05)
    assert pb.gap_at(stl, mtl, 0, 0.2) is None  # the MTL run never gets there


def test_shared_levels_are_reached_by_every_run_and_skip_the_initial_loss():
    a = traj([0, 1, 2], [2.3, 1.0, 0.5], [0, 0, 0])
    b = traj([0, 1, 2], [2.3, 1.5, 0.8], [0, 0, 0])
    levels = pb.shared_levels([(a, b)], 0, 4)
    assert len(levels) == 4
    assert levels[-1] == pytest.approx(0.8) and levels[0] < 2.3
    assert np.all(np.diff(levels) < 0)
    assert all(pb.first_crossing(t["steps"], np.asarray(t["train_loss"])[:, 0], lv) is not None
               for t in (a, b) for lv in levels)


def test_opens_at_needs_the_gap_to_stay_open():
    assert pb.opens_at([0.0, 0.03, 0.01, 0.05, 0.06], 0.02) == 3
    assert pb.opens_at([0.05, -0.05], 0.02) == 0  # magnitude, either sign
    assert pb.opens_at([0.05, 0.0], 0.02) is None
    assert pb.opens_at([0.05, 0.06], 0.1) is None
    assert pb.opens_at([0.05, 0.06], float("nan")) is None  # one seed: no threshold


def test_correlation():
    r, rho, n = pb.correlation([1, 2, 3, 4], [2, 4, 6, 100])
    assert rho == pytest.approx(1.0) and 0 < r < 1 and n == 4
    r, rho, n = pb.correlation([1, 2, np.nan, 3, np.inf], [3, 2, 5, 1, 0])
    assert (r, rho, n) == (pytest.approx(-1.0), pytest.approx(-1.0), 3)
    assert np.isnan(pb.correlation([1, 1, 1], [1, 2, 3])[0])


def test_partial_correlation_removes_a_shared_trend():
    rng = np.random.default_rng(0)
    progress = np.linspace(0, 1, 200)
    x = progress + 0.1 * rng.normal(size=200)
    y = progress + 0.1 * rng.normal(size=200)
    assert pb.correlation(x, y)[0] > 0.8
    r, n = pb.partial_correlation(x, y, progress)
    assert abs(r) < 0.2 and n == 200
    r, _ = pb.partial_correlation(x + y, y, progress)  # a shared residual survives
    assert r > 0.6
    assert np.isnan(pb.partial_correlation([1, 2, 3], [1, 2, 3], [0, 1, 2])[0])


def test_explanation_and_conflict_points_from_hand_made_trajectories():
    steps = [0, 2, 4]
    stl = traj(steps, [2.0, 1.6, 1.2], [2.0, 1.7, 1.4], cosines=[0.9, 0.9, 0.9, 0.9],
               quantities={"sharpness": [1.0, 2.0, 3.0]})
    mtl = traj(steps, [2.0, 1.8, 1.6], [2.0, 1.9, 1.8], cosines=[0.1, 0.3, -0.2, 0.0],
               inter=[-0.4, 0.0, 0.2, 0.6], quantities={"sharpness": [1.0, 4.0, 9.0]})
    points = pb.explanation_points(stl, mtl, 0)
    # checkpoints 2 (level 1.8, STL at step 1) and 4 (level 1.6, STL at step 2)
    assert [p["level"] for p in points] == pytest.approx([1.8, 1.6])
    assert [p["gap"] for p in points] == pytest.approx([1.9 - 1.85, 1.8 - 1.7])
    assert [p["sharpness"] for p in points] == pytest.approx([4.0 - 1.5, 9.0 - 2.0])
    assert [p["progress"] for p in points] == pytest.approx([0.5, 1.0])
    conflict = pb.conflict_points(stl, mtl, 0)
    assert [p["step"] for p in conflict] == [2, 4]
    assert [p["update"] for p in conflict] == pytest.approx([0.2, -0.1])
    assert [p["inter"] for p in conflict] == pytest.approx([-0.2, 0.4])
    assert [p["deficit"] for p in conflict] == pytest.approx([0.4 - 0.2, 0.4 - 0.2])
    assert [p["gap"] for p in conflict] == pytest.approx([1.9 - 1.85, 1.8 - 1.7])


def test_checkpoint_steps_are_on_the_logging_grid():
    assert trajectories.checkpoint_steps(100, 8, 6) == [0, 16, 40, 64, 80, 100]
    assert trajectories.checkpoint_steps(8, 2, 3) == [0, 4, 8]


def test_task_conflicts_average_the_pairs_holding_the_task():
    t = {"conflict": {"steps": [0, 1], "update": [[0.5, 0.1, -0.2], [0.4, 0.0, 0.3]],
                      "inter": [[0.2, -0.4, 0.6], [0.0, 0.1, -0.3]], "pairs": [[0, 1], [0, 2], [1, 2]]}}
    steps, update, inter = pb.task_conflicts(t, 2)
    assert list(steps) == [0, 1]
    assert update == pytest.approx([-0.2, 0.3])
    assert inter == pytest.approx([(-0.4 + 0.6) / 2, (0.1 - 0.3) / 2])  # pairs (0, 2) and (1, 2)


def test_converged_iterations():
    history = 2.0 - 0.5 ** np.arange(1, 31)  # h_k = 2 - 2^-k
    # |h_14 - h_9| = 2^-9 - 2^-14 = 1.89e-3 <= 1e-3 h_14, |h_13 - h_8| = 3.78e-3 is not
    assert pb.converged_iterations(history, min_iters=1) == 14
    assert pb.converged_iterations(history) == 20  # but never before step 20
    assert pb.converged_iterations(np.arange(1.0, 31.0)) is None  # still moving
    assert pb.converged_iterations(np.ones(19)) is None  # fewer steps than the minimum


def test_step_probe_cosines_between_task_gradients():
    params = {"encoder": {"w": np.zeros((2, 2), np.float32)}, "head_0": {"b": np.zeros(1, np.float32)}}
    grads = {"encoder": {"w": np.array([[[1, 0], [0, 0]], [[1, 1], [0, 0]], [[-1, 0], [0, 0]]], np.float32)},
             "head_0": {"b": np.zeros(1, np.float32)}}
    rows, cos = trajectories.step_gradients(grads, params)
    assert rows.shape == (3, 4)  # the shared leaves only
    assert np.asarray(cos) == pytest.approx([1 / np.sqrt(2), -1.0, -1 / np.sqrt(2)], abs=1e-6)
    assert shared_rows(params, params).shape == (4,)
    jz = np.arange(3 * 2 * 5, dtype=np.float32).reshape(3, 2, 5)   # a method at the representation: J_z whole
    np.testing.assert_array_equal(shared_rows({"encoder": jz}, params), jz.reshape(3, 10))


def fake_fashion_args(tmp_path, monkeypatch, **changes):
    fashion = write_fake_fashion_mnist(tmp_path / "fashion", n_train=240, n_test=80)
    tiny = dict(trajectories.PRESETS["tiny"], methods=["ew"], **changes)
    monkeypatch.setitem(trajectories.PRESETS, "tiny", tiny)
    out = tmp_path / "out"
    return tiny, out, ["--preset", "tiny", "--data-dir", str(fashion), "--out", str(out)]


def test_tiny_study_end_to_end(tmp_path, monkeypatch, capsys):
    tiny, out, args = fake_fashion_args(tmp_path, monkeypatch)
    assert trajectories.main(args) == 0
    records = {r["label"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert sorted(records) == ["ew/adam/lr0.001/s0", "stl0/adam/lr0.001/s0", "stl1/adam/lr0.001/s0"]
    total = tiny["epochs"] * (tiny["data"]["n_train"] // tiny["batch_size"])
    for label, r in records.items():
        t = r["trajectory"]
        assert t["steps"] == list(range(0, total + 1, tiny["every"]))
        assert t["checkpoints"]["steps"] == trajectories.checkpoint_steps(total, tiny["every"], tiny["checkpoints"])
        assert t["conflict"]["steps"] == list(range(total))
        trained = 1 if label.startswith("stl") else 2
        update = np.asarray(t["conflict"]["update"])
        assert update.shape == (total, trained) and np.all(np.abs(update) <= 1)
        assert np.asarray(t["conflict"]["inter"]).shape == (total, trained - 1)  # one pair under MTL
        for q in pb.QUANTITIES:
            assert np.asarray(t["checkpoints"][q]).shape == (len(t["checkpoints"]["steps"]), 2)
            assert len(t["checkpoints"]["second"][q]) == 2  # the second probe batch, last checkpoint
        sharp = np.asarray(t["checkpoints"]["sharpness"], float)  # the trained tasks' only
        assert np.all(sharp[:, :trained] > 0 if trained == 2 else sharp[:, int(label[3])] > 0)
        assert np.isnan(sharp).sum() == (0 if trained == 2 else len(sharp))
        assert np.asarray(t["checkpoints"]["lanczos_iters"]).shape == (len(sharp), trained)
        assert t["metrics"] == ["accuracy", "accuracy"]
    # same seed: same initialisation, so the runs start at the same training loss
    ew = records["ew/adam/lr0.001/s0"]["trajectory"]
    for task in (0, 1):
        stl = records[f"stl{task}/adam/lr0.001/s0"]["trajectory"]
        assert stl["train_loss"][0][task] == pytest.approx(ew["train_loss"][0][task], abs=1e-6)
        assert stl["conflict"]["update"][0][0] > 0  # a single task's first Adam step descends
    summary = (out / "summary.md").read_text()
    for section in ("Generalization gap at comparable training loss", "Candidate explanations",
                    "Conflict vs optimization", "Task top_left", "sharpness", "cos(g_t, g_s)",
                    "Estimates' own noise", "cannot tell (one seed)", "Spearman"):
        assert section in summary
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert trajectories.main(args) == 0  # resumes: nothing retrained
    assert "3 runs, 3 already done" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "qm9"], "--dataset qm9: the trajectories study runs on"),
    (["--dataset", "nyuv2", "--problems", "CL+RR"], "--problems: the problems are"),
    (["--tasks", "CL"], "--tasks: multi_fashion has a fixed task set"),
])
def test_wrong_problem_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        trajectories.main(["--preset", "tiny", *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def records_of(out) -> dict:
    return {r["label"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


@pytest.mark.slow  # ~40 s on 2 cores: two task sets, each compiling its probes
def test_multi_mnist_problems_end_to_end(tmp_path, monkeypatch):
    fashion = write_fake_fashion_mnist(tmp_path / "items", n_train=VAL_SIZE + 64, n_test=64, gz=False)
    monkeypatch.setitem(trajectories.PRESETS, "tiny", dict(
        trajectories.PRESETS["tiny"], methods=["ew"], data=dict(n_train=64, n_val=32, n_test=32)))
    out = tmp_path / "out"
    argv = ["--preset", "tiny", "--problems", "CL+RR", "CL+CR", "--data-dir", str(fashion), "--out", str(out)]
    assert trajectories.main(argv) == 0
    records = records_of(out)
    assert sorted(records) == sorted(f"{p}/{m}/adam/lr0.001/s0" for p in ("CL+RR", "CL+CR")
                                     for m in ("stl0", "stl1", "ew"))
    rr = records["CL+RR/ew/adam/lr0.001/s0"]
    assert rr["tasks"] == ["CL", "RR"] and rr["trajectory"]["metrics"] == ["accuracy", "recon_error"]
    summary = (out / "summary.md").read_text()
    assert "## CL+RR" in summary and "## CL+CR" in summary and "### Task RR" in summary


@pytest.mark.slow  # 30-90 s each on 2 cores: every data set compiles its tiny model's probes
@pytest.mark.parametrize("name", ["cityscapes", "nyuv2", "celeba"])
def test_other_dataset_layouts_end_to_end(name, tmp_path, monkeypatch):
    args, settings = data_args(name, tmp_path)
    if name == "celeba":
        two_tasks(name, monkeypatch)
    monkeypatch.setitem(trajectories.PRESETS, "tiny", dict(
        trajectories.PRESETS["tiny"], methods=["ew"], data=dict(n_train=4, n_val=4, n_test=4, **settings),
        epochs=1, batch_size=2, every=1, checkpoints=2, probe=2, hessian_probe=2, train_eval=4))
    out = tmp_path / "out"
    argv = ["--preset", "tiny", "--dataset", name, "--tiny-model", "--out", str(out), *args]
    with fake_tfds(name):
        assert trajectories.main(argv) == 0
    records = records_of(out)
    tasks = 3 if name == "nyuv2" else 2   # NYUv2: segmentation, depth, normals
    assert len(records) == tasks + 1  # the STL runs and EW
    ew = next(r for r in records.values() if r["spec"]["method"] == "ew")["trajectory"]
    assert ew["steps"] == [0, 1, 2]
    assert np.asarray(ew["conflict"]["inter"]).shape == (2, tasks * (tasks - 1) // 2)
    assert np.all(np.isfinite(np.asarray(ew["checkpoints"]["fisher_trace"])))
    assert "### Conflict vs optimization" in (out / "summary.md").read_text()
