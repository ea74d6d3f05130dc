"""Validation held out of the targets, the best set, early stopping and their resume
(FC1, float64, mnist_5k, in this process)."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
from train_testlib import metrics

from tfkip.data import prepare
from tfkip.data.holdout import validation_split
from tfkip.train.config import DistillConfig
from tfkip.train.distill import run_distillation
from tfkip.train.run import Run

# Learning rate 1.0 makes the validation loss turn up after ~20 steps (float64: the same
# trajectory every time), so patience 2 stops the run.
NOISY = dict(
    target_batch_size=20,
    eval_every=1,
    checkpoint_every=4,
    steps_per_loop=2,
    validation_size=50,
    learning_rate=1.0,
    eval_tile=100,
)


@pytest.fixture(scope="module")
def data():
    return prepare("mnist_5k")


def test_validation_split_is_a_class_balanced_partition(data):
    labels = data.labels_train
    val, rest = validation_split(labels, 30, seed=4)
    assert np.bincount(labels[val], minlength=10).tolist() == [3] * 10
    assert np.array_equal(np.sort(np.concatenate([val, rest])), np.arange(labels.size))
    assert np.all(np.diff(rest) > 0)
    again, _ = validation_split(labels, 30, seed=4)
    other, _ = validation_split(labels, 30, seed=5)
    assert np.array_equal(val, again) and not np.array_equal(val, other)
    none, everything = validation_split(labels, 0, seed=4)
    assert none.size == 0 and np.array_equal(everything, np.arange(labels.size))


@pytest.mark.parametrize("size", [-10, 15, 10.5, True])
def test_bad_validation_size(data, size):
    with pytest.raises(ValueError, match="validation_size"):
        validation_split(data.labels_train, size, seed=0)


def test_validation_cannot_take_a_whole_class():
    with pytest.raises(ValueError, match="Class 1 has 2 train images"):
        validation_split(np.array([0, 0, 0, 1, 1]), 4, seed=0)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(early_stopping_patience=2), "needs validation images"),
        (dict(validation_size=10, eval_every=0), "eval_every must be > 0"),
        (dict(validation_kernel="rf"), "validation_kernel must be one of"),
        (dict(eval_kernel="rf"), "eval_kernel must be one of"),
        (dict(max_time=0), "max_time must be > 0"),
        (dict(snapshot_every_seconds=-1.0), "snapshot_every_seconds must be > 0"),
        (dict(validation_size=-10), "validation_size must be an integer >= 0"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        DistillConfig(**settings)


def test_best_set_keeps_the_lowest_loss_and_counts_evaluations_since():
    from tfkip.train.validation import BestSet

    best = BestSet((2, 3), (2, 4), "float64")
    assert not best.found and not best.exhausted(1)
    sets = [np.full((2, 3), i, float) for i in range(5)]
    for step, loss in enumerate([3.0, 2.0, 2.0, 2.5, 1.0]):
        best.update(step, loss, sets[step], np.zeros((2, 4)))
        if step == 3:
            assert best.fields() == {
                "best_step": 1,  # a tie keeps the earlier set
                "best_validation_loss": 2.0,
                "evaluations_since_best": 2,
            }
            assert best.exhausted(2) and not best.exhausted(3) and not best.exhausted(0)
            np.testing.assert_array_equal(best.images.numpy(), sets[1])
    assert best.fields()["best_step"] == 4 and not best.exhausted(1)
    with pytest.raises(ValueError, match="not finite"):
        best.update(5, float("nan"), sets[0], np.zeros((2, 4)))


def test_validation_images_leave_the_targets_and_the_support(tmp_path, data):
    run = Run(DistillConfig(steps=0, workdir=str(tmp_path / "r"), validation_size=100))
    assert run.x_val.shape == (100, 28, 28, 1) and len(run.x_target) == len(data.x_train) - 100
    flat = data.x_train.reshape(len(data.x_train), -1)
    rows = {r.tobytes(): i for i, r in enumerate(flat)}
    val = {rows[r.tobytes()] for r in run.x_val.reshape(100, -1)}
    target = {rows[r.tobytes()] for r in run.trainer.x_train.reshape(len(run.x_target), -1)}
    support = {rows[r.tobytes()] for r in run.support_images.reshape(10, -1)}
    assert len(val) == 100 and not val & target and not val & support and support <= target


def test_best_set_and_early_stopping(tmp_path):
    workdir = tmp_path / "run"
    # A snapshot after every step: the support at each step, to compare best/ with.
    config = DistillConfig(
        steps=40,
        workdir=str(workdir),
        early_stopping_patience=2,
        snapshot_every_seconds=1e-6,
        **NOISY,
    )
    last = run_distillation(config)
    records = metrics(workdir)
    losses = [r["validation_loss"] for r in records]
    best = int(np.argmin(losses))
    assert last["stopped"] == "early_stopping" and last == records[-1]
    assert last["step"] == best + 2 < 40 and last["evaluations_since_best"] == 2
    assert all(r["best_step"] == int(np.argmin(losses[: i + 1])) for i, r in enumerate(records))
    # best/ reads like a run folder: the set of the best step, its record, the run's files.
    best_dir = workdir / "best"
    best_record = metrics(best_dir)
    assert best_record == [records[best]] and best_record[0]["step"] == best
    for name in ("config.json", "preprocessing.npz"):
        assert (best_dir / name).read_bytes() == (workdir / name).read_bytes()
    snapshot = workdir / "snapshots" / f"step_{best:08d}.npz"
    with np.load(best_dir / "distilled.npz") as got, np.load(snapshot) as want:
        np.testing.assert_array_equal(got["images"], want["images"])
        np.testing.assert_array_equal(got["labels"], want["labels"])
    with np.load(workdir / "distilled.npz") as final, np.load(snapshot) as at_best:
        assert not np.array_equal(final["images"], at_best["images"])  # the final set is later
    # Rerunning a stopped run stops again at once, with the same records.
    rerun = run_distillation(config)
    assert rerun["step"] == last["step"] and metrics(workdir)[:-1] == records[:-1]

    # A kill after the last checkpoint before the stop: resumed there (the best set and
    # the patience counter restored, best/ rewritten from them), the run stops at the same
    # step with the same best set.
    killed = tmp_path / "killed"
    shutil.copytree(workdir, killed)
    folder = killed / "checkpoints"
    saved = sorted({int(p.name.split("-")[1].split(".")[0]) for p in folder.glob("ckpt-*")})
    resume_at = max(s for s in saved if s < last["step"])
    for path in folder.glob("ckpt-*"):
        if int(path.name.split("-")[1].split(".")[0]) > resume_at:
            path.unlink()
    (folder / "checkpoint").write_text(
        f'model_checkpoint_path: "ckpt-{resume_at}"\n'
        f'all_model_checkpoint_paths: "ckpt-{resume_at}"\n'
    )
    run_distillation(DistillConfig(**{**config.to_dict(), "workdir": str(killed)}))
    got = metrics(killed)
    assert [r["step"] for r in got] == [r["step"] for r in records]
    for a, b in zip(got, records):
        assert a["validation_loss"] == b["validation_loss"] and a["best_step"] == b["best_step"]
    assert got[-1]["stopped"] == "early_stopping"
    assert metrics(killed / "best") == best_record
    with np.load(killed / "best" / "distilled.npz") as a:
        with np.load(best_dir / "distilled.npz") as b:
            np.testing.assert_array_equal(a["images"], b["images"])


def test_a_workdir_from_before_validation_still_resumes(tmp_path):
    """config.json files written before the validation settings existed lack them."""
    workdir = tmp_path / "old"
    run_distillation(DistillConfig(steps=2, workdir=str(workdir), **dict(NOISY, validation_size=0)))
    path = workdir / "config.json"
    config = json.loads(path.read_text())
    for name in ("validation_size", "validation_kernel", "eval_kernel"):
        del config[name]
    path.write_text(json.dumps(config))
    record = run_distillation(
        DistillConfig(steps=4, workdir=str(workdir), **dict(NOISY, validation_size=0))
    )
    assert record["step"] == 4 and "validation_loss" not in record
    assert not pathlib.Path(workdir / "best").exists()


def test_mirrored_two_replicas_validate_and_keep_the_best_as_default(tmp_path):
    """The best set's variables under MirroredStrategy (2 logical CPUs, a subprocess):
    same validation scores, best steps and best/ set as the default strategy."""
    from train_testlib import DISTILL, max_rel, run

    flags = {**NOISY, "steps": 6, "early_stopping_patience": 2}
    args = [f"--{k}={v}" for k, v in flags.items()]
    mirrored = tmp_path / "mirrored"
    code, log = run(
        DISTILL,
        [*args, "--strategy=mirrored", "--num_cpu_devices=2", f"--workdir={mirrored}"],
        tmp_path / "mirrored.log",
    )
    assert code == 0, log[-3000:]
    default = tmp_path / "default"
    run_distillation(DistillConfig(workdir=str(default), **flags))
    got, want = metrics(mirrored), metrics(default)
    assert [r["best_step"] for r in got] == [r["best_step"] for r in want]
    for a, b in zip(got, want):
        assert a["validation_loss"] == pytest.approx(b["validation_loss"], rel=1e-8)
        assert a["validation_accuracy"] == b["validation_accuracy"]
    with np.load(mirrored / "best" / "distilled.npz") as a:
        with np.load(default / "best" / "distilled.npz") as b:
            assert max_rel(a["images"], b["images"]) <= 1e-8
