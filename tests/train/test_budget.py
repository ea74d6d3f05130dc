"""The wall-clock budget (--max_time) and time snapshots: chunk sizing with a fake clock,
a budget stop in this process, and launch/distill.py stopping on a tiny budget."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import tensorflow as tf
from train_testlib import DISTILL, metrics, run

from tfkip.train.budget import Budget
from tfkip.train.config import DistillConfig
from tfkip.train.distill import run_distillation
from tfkip.train.snapshots import read_index

TINY = dict(target_batch_size=100, eval_every=4, checkpoint_every=4, steps_per_loop=4)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_budget_sizes_host_calls_to_fit():
    clock = FakeClock()
    budget = Budget(10.0, started=clock.now - 1.0, clock=clock)  # 9 s left
    assert budget.fit(50, until_eval=100) == 1  # the compiling call: one step
    clock.now += 3.0
    budget.record_train(1, 3.0)  # 3 s a step (compilation included): 6 s left
    assert budget.fit(50, until_eval=100) == 1  # a step to measure without compilation
    budget.record_train(1, 0.5)  # 0.5 s a step (the clock stands still here)
    assert budget.fit(50, until_eval=100) == 12
    assert budget.fit(5, until_eval=100) == 5
    budget.record_eval(4.0)  # an evaluation takes 4 s: 10 steps + it do not fit in 6 s
    assert budget.fit(10, until_eval=10) == 9  # stop one step short of it
    assert budget.fit(4, until_eval=4) == 4  # 2 s + 4 s fit
    clock.now += 6.0
    assert budget.spent() and budget.fit(50, until_eval=100) == 0
    assert budget.train_seconds == 3.5 and budget.calls == 2


def test_unlimited_budget_never_stops():
    budget = Budget(None)
    assert not budget.limited and budget.fit(7, until_eval=3) == 7 and not budget.spent()
    with pytest.raises(ValueError, match="max_time must be > 0"):
        Budget(-1.0)


def test_spent_budget_stops_cleanly_with_outputs(tmp_path):
    """A budget spent before the first training call: the natural set, evaluated, with a
    record that says why; one with room for a few calls: checkpoint at the stop step."""
    workdir = tmp_path / "spent"
    config = DistillConfig(steps=1000, workdir=str(workdir), max_time=5.0, **TINY)
    record = run_distillation(config, started=time.monotonic() - 5.0)
    assert record["step"] == 0 and record["stopped"] == "max_time"
    assert metrics(workdir)[-1] == record and "test_accuracy" in record
    assert (workdir / "distilled.npz").exists()

    workdir = tmp_path / "some"
    config = DistillConfig(steps=100000, workdir=str(workdir), max_time=8.0, **TINY)
    record = run_distillation(config, started=time.monotonic())
    assert record["stopped"] == "max_time" and 0 < record["step"] < 100000
    # It stops short only when not even a step fits (an FC1 step: milliseconds); the
    # overshoot is at most the last host call (never longer than all) and a checkpoint.
    # It stops early only by what one more step would have taken (a loaded machine's
    # steps are slow; train_seconds / step, compilation included, bounds one step).
    one_step = record["train_seconds"] / record["step"]
    assert 8.0 - one_step - 0.5 <= record["elapsed_seconds"], record
    assert record["elapsed_seconds"] <= 8.0 + record["train_seconds"] + 3.0, record
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert latest.endswith(f"ckpt-{record['step']}")
    steps = [r["step"] for r in metrics(workdir)]
    assert steps == sorted(set(steps)) and steps[-1] == record["step"]
    # Resuming with a new budget continues from the stop.
    resumed = run_distillation(config, started=time.monotonic() - 6.0)
    assert resumed["step"] > record["step"] and resumed["stopped"] == "max_time"


def test_snapshots_by_training_seconds(tmp_path):
    workdir = tmp_path / "snap"
    config = DistillConfig(
        steps=12, workdir=str(workdir), snapshot_every_seconds=1e-4, **dict(TINY, eval_every=0)
    )
    run_distillation(config)
    entries = read_index(str(workdir / "snapshots"))
    assert [e["step"] for e in entries] == list(range(13))  # one call a step: each is due
    seconds = [e["train_seconds"] for e in entries]
    assert seconds[0] == 0 and np.all(np.diff(seconds) > 0)
    with np.load(workdir / "snapshots" / entries[-1]["file"]) as last:
        with np.load(workdir / "distilled.npz") as final:
            np.testing.assert_array_equal(last["images"], final["images"])
    assert not (workdir / "metrics.jsonl").exists()  # eval_every=0: no evaluation at all


def test_launch_distill_stops_on_a_tiny_budget(tmp_path):
    workdir = tmp_path / "budget"
    args = [
        "--dataset=mnist_5k",
        "--architecture=fc",
        "--depth=1",
        "--target_batch_size=100",
        "--steps=1000000",
        "--eval_every=0",
        "--max_time=12",
        f"--workdir={workdir}",
    ]
    code, log = run(DISTILL, args, tmp_path / "budget.log")
    assert code == 0, log[-3000:]
    assert "Stopped at step" in log and "max_time=12 s is spent" in log, log[-3000:]
    # Progress lines count down the budget, not the million steps.
    lefts = re.findall(r"elapsed, ~([\d.]+) s \(of --max_time\) left", log)
    assert lefts and all(float(s) <= 12 for s in lefts), log[-3000:]
    record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["stopped"] == "max_time" and 0 < record["step"] < 1000000
    assert record["train_seconds"] > 0
    assert 11 <= record["elapsed_seconds"] <= 12 + record["train_seconds"] + 3.0, record
    assert (workdir / "distilled.npz").exists()


def test_two_workers_stop_on_the_budget_at_the_same_step(tmp_path):
    """MultiWorkerMirroredStrategy: each worker has its own clock, the chief's decisions
    are taken (`tfkip.train.budget.agree`), so both stop after the same steps and exit 0
    instead of waiting for each other's collectives."""
    from train_testlib import SHORT_RUN, run_workers

    workdir = tmp_path / "mwms"
    args = [a for a in SHORT_RUN if not a.startswith(("--steps=", "--eval_every="))]
    args += ["--steps=1000000", "--max_time=25", "--eval_every=0", "--snapshot_every_seconds=1"]
    args += ["--strategy=multi_worker_mirrored", f"--workdir={workdir}"]
    procs, logs = run_workers(DISTILL, args, tmp_path)
    stops = []
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-3000:]
        stops += [
            line.split("Stopped at step ")[1].split(" ")[0]
            for line in log.splitlines()
            if "Stopped at step" in line
        ]
    record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["stopped"] == "max_time" and stops == [str(record["step"])] * 2, stops
