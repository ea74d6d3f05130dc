"""launch/export.py end to end on a fake distillation workdir."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from sets_testlib import assert_bit_equal, write_workdir

from tfkip.sets import export_distilled, load_tfds, read_kip_npz, read_tfrecord_arrays

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "launch", "export.py")


def _run(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def workdir(tmp_path):
    path = str(tmp_path / "run")
    images, labels = write_workdir(path, zca=True)
    return path, images, labels


def _png_shape(path):
    return tuple(tf.io.decode_png(tf.io.read_file(path)).shape)


def test_launch_npz(tmp_path, workdir):
    run, images, labels = workdir
    out = str(tmp_path / "release")
    proc = _run(f"--distilled={run}", "--format=npz", f"--output={out}", "--max_per_class=2")
    assert proc.returncode == 0, proc.stderr
    name = "ConvNet_ssize6_zca_l_noaug_ckpt40"
    assert sorted(os.listdir(out)) == sorted(
        ["catalog.csv", f"{name}.npz", f"{name}.npz.json", f"{name}.npz.zca.npy", f"{name}.png"]
    )
    x, y = read_kip_npz(os.path.join(out, f"{name}.npz"))
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    with open(os.path.join(out, "catalog.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["test_acc"] == "0.45" and rows[0]["ckpt"] == "40"
    # 3 class rows of 4x4 images upscaled 16x to 64 px (+1 px borders), 2 per class, plus
    # the class-name column on the left.
    rows, cols, channels = _png_shape(os.path.join(out, f"{name}.png"))
    assert (rows, channels) == (3 * (4 * 16 + 1) + 1, 3) and cols > 2 * (4 * 16 + 1) + 1


def test_launch_tfrecord(tmp_path, workdir):
    run, images, labels = workdir
    out = str(tmp_path / "rec" / "kip.tfrecord")
    args = ("--format=tfrecord", f"--output={out}", "--num_shards=2", "--compression=GZIP")
    proc = _run(f"--distilled={run}", *args)
    assert proc.returncode == 0, proc.stderr
    x, y, m = read_tfrecord_arrays(out)
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    assert m.zca and m.step == 40 and os.path.exists(m.zca_matrix_file)
    assert os.path.exists(out + ".png")


def test_launch_tfds(tmp_path, workdir):
    run, images, labels = workdir
    data_dir = str(tmp_path / "tfds")
    proc = _run(f"--distilled={run}", "--format=tfds", f"--data_dir={data_dir}", "--name=kip_t")
    assert proc.returncode == 0, proc.stderr
    x, y = load_tfds("kip_t", data_dir)
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    assert os.path.exists(os.path.join(data_dir, "kip_t", "1.0.0", "support_grid.png"))


def test_launch_rejects_unknown_format(tmp_path, workdir):
    proc = _run(f"--distilled={workdir[0]}", "--format=parquet", f"--output={tmp_path}/x")
    assert proc.returncode != 0
    assert "--format" in proc.stderr and "tfrecord" in proc.stderr
    assert not os.path.exists(tmp_path / "x")


def test_export_distilled_in_process(tmp_path, workdir):
    """The same library call the script makes, for every format, from a bare npz too."""
    run, images, labels = workdir
    out = export_distilled(run, "npz", str(tmp_path / "npz"), grid=False)
    assert set(out) == {"export", "catalog"}
    written = export_distilled(out["export"], "tfrecord", str(tmp_path / "r.tfrecord"))
    x, _, m = read_tfrecord_arrays(written["export"])
    assert_bit_equal(x, images)
    assert m.zca_matrix_file.endswith("r.tfrecord.zca.npy")
    with pytest.raises(ValueError, match="fmt='csv'"):
        export_distilled(run, "csv", str(tmp_path / "c"))
    assert np.array_equal(read_kip_npz(out["export"])[1], labels)
