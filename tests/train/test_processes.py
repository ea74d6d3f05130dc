"""Whole runs of ``launch/distill.py`` in subprocesses: kill-and-resume, two
MultiWorkerMirroredStrategy workers on 127.0.0.1, and a batch that does not divide over 3
replicas. All compare with one uninterrupted single-process run (float64, FC1, 200 steps)
of the same kernel: the exact NTK (``SHORT_RUN``) and the random-feature NNGP
(``RF_SHORT_RUN``: new twins at every step, keyed by ``(seed, step)``, which a resumed run
and every worker must draw alike).
"""

from __future__ import annotations

import json
import re
import signal
import time

import numpy as np
import pytest
from train_testlib import (
    DISTILL,
    RF_SHORT_RUN,
    SHORT_RUN,
    distilled,
    finish,
    launch,
    max_rel,
    metrics,
    run,
    run_workers,
    temp_files,
)

# Each kernel's run arguments (without --workdir) and what its config.json must say.
RUNS = {"exact": SHORT_RUN, "rf": RF_SHORT_RUN}
KERNEL_CONFIG = {
    "exact": {"kernel": "ntk", "loss": "mse"},
    "rf": {"kernel": "rf_nngp", "rf_models": 2, "rf_width": 64, "loss": "platt"},
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def kernel(request) -> str:
    """The kernel of a test's runs: "exact" or "rf" (module scope: pytest runs one
    kernel's tests together, so each reference run below is made once)."""
    return request.param


@pytest.fixture(scope="module")
def reference(kernel, tmp_path_factory):
    """The uninterrupted single-process run of ``kernel``'s configuration."""
    workdir = tmp_path_factory.mktemp(f"reference-{kernel}")
    log_path = workdir.parent / f"ref-{kernel}.log"
    code, log = run(DISTILL, [*RUNS[kernel], f"--workdir={workdir}"], log_path)
    assert code == 0, log[-3000:]
    return workdir


def test_uninterrupted_run_outputs(kernel, reference):
    out = distilled(reference)
    assert out["images"].shape == (10, 28, 28, 1) and out["labels"].shape == (10, 10)
    steps = [r["step"] for r in metrics(reference)]
    assert steps == [0, 100, 200]
    assert temp_files(reference) == []
    config = json.loads((reference / "config.json").read_text())
    assert config["steps"] == 200 and config["strategy"] == "default"
    assert config["dtype"] == "float64"
    assert {k: config[k] for k in KERNEL_CONFIG[kernel]} == KERNEL_CONFIG[kernel]


def _wait_for_checkpoint_after(proc, workdir, step: int, timeout: float = 240) -> None:
    """Polls until the workdir's latest checkpoint is beyond ``step``."""
    state = workdir / "checkpoints" / "checkpoint"
    deadline = time.monotonic() + timeout
    while _latest_step(state) <= step:
        assert proc.poll() is None, finish(proc)[-3000:]
        assert time.monotonic() < deadline, f"no checkpoint after step {step} in {timeout} s"
        time.sleep(0.005)


def _latest_step(state) -> int:
    try:
        text = state.read_text()
    except OSError:
        return -1
    match = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.MULTILINE)
    return int(match.group(1)) if match else -1


def test_sigterm_sigkill_and_rerun_give_the_uninterrupted_result(kernel, reference, tmp_path):
    """SIGTERM (a preemption notice): checkpoint and stop with status 143; rerun; SIGKILL
    at an arbitrary moment after a later checkpoint; rerun to the end: the distilled set
    and metrics equal the uninterrupted run's bit for bit."""
    workdir = tmp_path / "run"
    args = [*RUNS[kernel], f"--workdir={workdir}"]
    state = workdir / "checkpoints" / "checkpoint"

    proc = launch(DISTILL, args, tmp_path / "terminated.log")
    _wait_for_checkpoint_after(proc, workdir, -1)
    proc.send_signal(signal.SIGTERM)
    log = finish(proc)
    assert proc.returncode == 143, log[-3000:]
    terminated_at = _latest_step(state)
    assert 10 <= terminated_at < 200 and "stopping (SIGTERM)" in log, log[-3000:]

    proc = launch(DISTILL, args, tmp_path / "killed.log")
    _wait_for_checkpoint_after(proc, workdir, terminated_at)
    proc.send_signal(signal.SIGKILL)
    log = finish(proc)
    assert proc.returncode == -signal.SIGKILL
    assert f"at step {terminated_at}" in log  # it had resumed
    killed_at = _latest_step(state)
    assert terminated_at < killed_at < 200, (terminated_at, killed_at)

    code, log = run(DISTILL, args, tmp_path / "resumed.log")
    assert code == 0, log[-3000:]
    assert "Resumed from" in log, log[-3000:]

    resumed, expected = distilled(workdir), distilled(reference)
    for name in ("images", "labels"):
        gap = max_rel(resumed[name], expected[name])
        assert np.array_equal(resumed[name], expected[name]), f"{name}: max rel {gap:.3g}"
    records, expected_records = metrics(workdir), metrics(reference)
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)) == [r["step"] for r in expected_records]
    assert records == expected_records  # every loss, accuracy and test MSE
    assert not [p for p in temp_files(workdir) if not p.startswith("checkpoints")]


def test_multi_worker_mirrored_two_processes_match_one_process(kernel, reference, tmp_path):
    workdir = tmp_path / "mwms"
    args = [*RUNS[kernel], "--strategy=multi_worker_mirrored", f"--workdir={workdir}"]
    procs, logs = run_workers(DISTILL, args, tmp_path)
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-3000:]
    assert "num_workers = 2" in logs[0]

    got, expected = distilled(workdir), distilled(reference)
    assert max_rel(got["images"], expected["images"]) <= 1e-8
    assert max_rel(got["labels"], expected["labels"]) <= 1e-8
    records, expected_records = metrics(workdir), metrics(reference)
    assert [r["step"] for r in records] == [r["step"] for r in expected_records]
    for a, b in zip(records, expected_records):
        assert a["test_mse"] == pytest.approx(b["test_mse"], rel=1e-8)
    # The non-chief worker's scratch checkpoints are gone; the chief wrote everything.
    assert sorted(p.name for p in workdir.iterdir()) == [
        "checkpoints",
        "config.json",
        "distilled.npz",
        "metrics.jsonl",
        "preprocessing.npz",
        "support.png",
        "tb",
    ]


def test_global_batch_that_does_not_divide_over_three_replicas(tmp_path):
    args = [
        "--strategy=mirrored",
        "--num_cpu_devices=3",
        "--target_batch_size=1000",
        "--steps=1",
        f"--workdir={tmp_path / 'run'}",
    ]
    code, log = run(DISTILL, args, tmp_path / "three.log")
    assert code != 0
    assert "divisible by the number of replicas (3)" in log and "batch_size=1000" in log, log[
        -3000:
    ]
