"""Evaluating a run's best set (--which=best) and a random-feature run with its exact
kernel (FC1, mnist_5k, float64)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfkip.evaluate import EvaluateConfig, evaluate_distilled, exact_kernel
from tfkip.sets.load import load_run
from tfkip.train.config import DistillConfig
from tfkip.train.distill import run_distillation

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = dict(
    target_batch_size=20,
    eval_every=1,
    steps_per_loop=1,
    checkpoint_every=2,
    learning_rate=1.0,
    validation_size=50,
    eval_tile=250,
)


def _last(path: pathlib.Path) -> dict:
    return json.loads(path.read_text().splitlines()[-1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("best") / "run"
    run_distillation(DistillConfig(steps=24, workdir=str(workdir), kernel="nngp", **TINY))
    return workdir


def test_best_and_final_sets_evaluate_to_what_the_run_reported(run_dir):
    best = _last(run_dir / "best" / "metrics.jsonl")
    final = _last(run_dir / "metrics.jsonl")
    assert best["step"] < final["step"] == 24  # the validation loss went up at the end
    for which, reported in (("best", best), ("final", final)):
        result = evaluate_distilled(EvaluateConfig(str(run_dir), which=which))
        assert result["which"] == which and result["kernel"] == "nngp"
        assert result["test_accuracy"] == reported["test_accuracy"]
        assert result["test_mse"] == pytest.approx(reported["test_mse"], rel=1e-10)
        assert result["reported"]["step"] == reported["step"]
    # best/ is read like a run folder by every reader.
    images, labels, metadata = load_run(str(run_dir / "best"))
    assert images.shape == (10, 28, 28, 1) and metadata.step == best["step"]


def test_another_exact_kernel(run_dir):
    ntk = evaluate_distilled(EvaluateConfig(str(run_dir), which="best", kernel="ntk"))
    assert ntk["kernel"] == "ntk"
    assert ntk["test_mse"] != _last(run_dir / "best" / "metrics.jsonl")["test_mse"]


def test_a_random_feature_run_is_evaluated_with_the_kernel_it_estimates(run_dir, tmp_path):
    assert exact_kernel("rf_nngp") == "nngp" and exact_kernel("ntk") == "ntk"
    copy = tmp_path / "rf"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "kernel": "rf_nngp"}))
    result = evaluate_distilled(EvaluateConfig(str(copy)))
    assert result["kernel"] == "nngp"
    assert result["test_accuracy"] == _last(run_dir / "metrics.jsonl")["test_accuracy"]


def test_best_of_a_run_without_validation_is_a_clear_error(tmp_path):
    workdir = tmp_path / "plain"
    run_distillation(DistillConfig(steps=0, workdir=str(workdir)))
    with pytest.raises(ValueError, match=r"which='best' needs a run folder .*validation_size"):
        evaluate_distilled(EvaluateConfig(str(workdir), which="best"))
    with pytest.raises(ValueError, match="which must be one of"):
        EvaluateConfig(str(workdir), which="last")


def test_script_which_best(run_dir, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "launch" / "evaluate.py"),
            f"--distilled={run_dir}",
            "--which=best",
            "--kernel=nngp",
            f"--output={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(best; run, 10 images)" in proc.stdout, proc.stdout
    result = json.loads(out.read_text())
    best = _last(run_dir / "best" / "metrics.jsonl")
    assert result["which"] == "best" and result["test_accuracy"] == best["test_accuracy"]
    assert np.isfinite(result["test_mse"])
