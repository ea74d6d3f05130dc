"""benchmarks/time_to_accuracy.py end to end on a tiny setting (FC1, seconds of budget)."""

from __future__ import annotations

import csv
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import time_to_accuracy  # noqa: E402


def test_time_to_accuracy_end_to_end(tmp_path):
    out = tmp_path / "results"
    argv = [
        "--architecture=fc",
        "--depth=1",
        "--budget=20",
        "--snapshot_every=0.5",
        "--methods=kip,ls",
        "--test_examples=300",
        "--distill_flags=--target_batch_size=100 --steps_per_loop=5",
        f"--out={out}",
        f"--workdir_root={tmp_path}",
    ]
    result = time_to_accuracy.main(argv)
    name = "time_to_accuracy_mnist_5k_fc_1ipc"
    with open(out / f"{name}.csv") as f:
        rows = list(csv.DictReader(f))
    kip = [r for r in rows if r["method"] == "kip"]
    ls = [r for r in rows if r["method"] == "ls"]
    assert len(ls) == 1 and float(ls[0]["train_seconds"]) > 0
    assert len(kip) >= 2 and kip[0]["step"] == "0" and float(kip[0]["train_seconds"]) == 0
    seconds = [float(r["train_seconds"]) for r in kip]
    steps = [int(r["step"]) for r in kip]
    assert np.all(np.diff(seconds) > 0) and np.all(np.diff(steps) > 0)
    assert {r["kernel"] for r in rows} == {"ntk"}
    # Each point is the exact-kernel accuracy of that snapshot: step 0 is the natural set.
    assert all(0.1 < float(r["test_accuracy"]) <= 1 for r in rows)
    assert float(kip[-1]["test_mse"]) < float(kip[0]["test_mse"])  # KIP lowers the loss
    png = tf.io.decode_png((out / f"{name}.png").read_bytes()).numpy()
    assert png.shape == (440, 720, 3) and len(np.unique(png.reshape(-1, 3), axis=0)) > 3
    text = (out / f"{name}.md").read_text()
    for needle in ("commit:", "date:", "machine:", "command:", "| kip | ntk |", "| ls | ntk |"):
        assert needle in text, needle
    assert "--max_time=20" in text and f"{name}.png" in text
    assert result["paths"]["csv"] == str(out / f"{name}.csv")


def test_unknown_method_is_refused(capsys):
    with pytest.raises(SystemExit):
        time_to_accuracy.parse_args(["--methods=kip,magic"])
    assert "--methods must name some of" in capsys.readouterr().err


def test_method_flags_reach_only_their_method(capsys):
    args = time_to_accuracy.parse_args(
        ["--methods=kip,rf_kip", "--method_flags=kip=--target_batch_size=10 --steps_per_loop=5"]
    )
    kip = time_to_accuracy.method_command(args, "kip", "/tmp/w")
    rf = time_to_accuracy.method_command(args, "rf_kip", "/tmp/w")
    assert kip[-2:] == ["--target_batch_size=10", "--steps_per_loop=5"]
    assert "--target_batch_size=10" not in rf and "--kernel=rf_nngp" in rf
    with pytest.raises(SystemExit):
        time_to_accuracy.parse_args(["--method_flags=magic=--steps=1"])
    assert "--method_flags must be METHOD=FLAGS" in capsys.readouterr().err
