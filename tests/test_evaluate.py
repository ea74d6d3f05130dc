"""launch/evaluate.py and tfkip.evaluate on real (tiny) runs and an offline bucket."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfkip import architectures
from tfkip.data import Preprocessor, centered_one_hot, class_balanced_indices, load_dataset
from tfkip.evaluate import EvaluateConfig, evaluate_distilled
from tfkip.kip.model import KIPModel
from tfkip.sets import export_distilled
from tfkip.train.config import DistillConfig
from tfkip.train.distill import run_distillation
from tfkip.train.label_solve import run_label_solve
from tfkip.viz import image_grid

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(
    dataset="mnist_5k",
    architecture="fc",
    depth=1,
    support_per_class=1,
    target_batch_size=100,
    eval_every=2,
    steps_per_loop=2,
    checkpoint_every=2,
)


def _script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run(
        [sys.executable, str(REPO / "launch" / "evaluate.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _metrics(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("evaluate") / "run"
    run_distillation(DistillConfig(steps=2, workdir=str(workdir), **TINY))
    return workdir


def test_script_on_a_run_folder_reports_what_the_run_reported(run_dir, tmp_path):
    out = tmp_path / "eval.json"
    proc = _script(f"--distilled={run_dir}", f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = _metrics(run_dir)[-1]
    result = json.loads(out.read_text())
    assert last["step"] == 2
    assert result["test_accuracy"] == last["test_accuracy"]
    assert result["test_mse"] == pytest.approx(last["test_mse"], rel=1e-12, abs=0)
    assert result["reported"]["test_accuracy"] == last["test_accuracy"]
    assert (result["source_kind"], result["kernel"], result["dtype"]) == ("run", "ntk", "float64")
    assert result["network"]["architecture"] == "fc" and result["network"]["depth"] == 1
    assert result["preprocessing"]["zca"] is False and result["test_examples"] == 1000
    assert f"test accuracy {last['test_accuracy']:.4f}" in proc.stdout
    assert "reported" in proc.stdout


def test_exports_and_label_solve_runs_evaluate_to_the_runs_numbers(run_dir, tmp_path):
    last = _metrics(run_dir)[-1]
    npz = export_distilled(str(run_dir), "npz", str(tmp_path / "npz"), grid=False)["export"]
    record = str(tmp_path / "rec" / "kip.tfrecord")
    export_distilled(str(run_dir), "tfrecord", record, grid=False)
    tfds_folder = export_distilled(str(run_dir), "tfds", str(tmp_path / "tfds"), grid=False)
    exports = ((npz, "npz"), (record, "tfrecord"), (tfds_folder["export"], "tfds"))
    for source, kind in exports:
        result = evaluate_distilled(EvaluateConfig(source, jit_compile=False))  # no XLA wait
        assert result["source_kind"] == kind and result["dataset"] == "mnist_5k"
        assert result["test_accuracy"] == last["test_accuracy"]
        assert result["test_mse"] == pytest.approx(last["test_mse"], rel=1e-9)
    ls_dir = tmp_path / "ls"
    solved = run_label_solve(DistillConfig(workdir=str(ls_dir), **TINY))[-1]
    result = evaluate_distilled(EvaluateConfig(str(ls_dir)))
    assert result["test_accuracy"] == solved["test_accuracy"]
    assert result["test_mse"] == pytest.approx(solved["test_mse"], rel=1e-12)
    nngp = evaluate_distilled(
        EvaluateConfig(str(run_dir), kernel="nngp", max_test_examples=100, jit_compile=False)
    )
    assert nngp["kernel"] == "nngp" and nngp["test_examples"] == 100
    assert nngp["test_mse"] != pytest.approx(last["test_mse"], rel=1e-3)


def _write_npz(path: pathlib.Path, images, labels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, images=images, labels=labels)


@pytest.fixture(scope="module")
def bucket(run_dir, tmp_path_factory):
    """A local folder laid out like gs://kip-datasets holding the run's natural start."""
    raw = load_dataset("mnist_5k")
    pre = Preprocessor.fit(raw.x_train)  # nozca: standardised with train statistics
    idx = class_balanced_indices(raw.y_train, 1, 0)  # the run's natural support (seed 0)
    images = pre(raw.x_train[idx])
    labels = centered_one_hot(raw.y_train[idx], 10)
    root = tmp_path_factory.mktemp("bucket")
    _write_npz(root / "kip/mnist/ssize10_nozca_nol_noaug_ckpt0.npz", images, labels)
    _write_npz(root / "kip/mnist/ConvNet_ssize10_nozca_nol_noaug_ckpt0.npz", images, labels)
    _write_npz(
        root / "kip/mnist/ssize10_nozca_l_noaug_ckpt2.npz", images[:, :, :, :], labels[:, :5]
    )
    _write_npz(root / "kip/mnist/ssize20_nozca_nol_noaug_ckpt0.npz", images, labels)
    _write_npz(
        root / "kip/cifar10/ssize10_nozca_nol_noaug_ckpt0.npz", np.zeros((10, 32, 32, 3)), labels
    )
    url = "https://storage.cloud.google.com/kip-datasets/kip/mnist"
    (root / "kip/kip.csv").write_text(
        "dataset,ssize,zca,l,aug,ckpt,test_acc,test_mse,URL\n"
        f"mnist,10,False,False,False,0,0.4321,0.0365,{url}/ssize10_nozca_nol_noaug_ckpt0.npz\n"
    )
    return root


def test_released_set_rebuilds_its_preprocessing_from_the_name(run_dir, bucket):
    start = _metrics(run_dir)[0]  # the run's evaluation of the same natural images
    assert start["step"] == 0
    result = evaluate_distilled(
        EvaluateConfig(
            "released:kip/mnist/ssize10_nozca_nol_noaug_ckpt0",
            dataset="mnist_5k",
            architecture="fc",
            depth=1,
            released_root=str(bucket),
            jit_compile=False,
        )
    )
    assert result["test_accuracy"] == start["test_accuracy"]
    assert result["test_mse"] == pytest.approx(start["test_mse"], rel=1e-9)
    assert result["source_kind"] == "released" and result["kernel"] == "ntk"
    assert result["preprocessing"]["zca"] is False
    assert "rebuilt from the name" in result["preprocessing"]["from"]
    assert result["index"]["test_acc"] == 0.4321  # printed beside the result
    gs_form = evaluate_distilled(
        EvaluateConfig(
            "gs://kip-datasets/kip/mnist/ssize10_nozca_nol_noaug_ckpt0.npz",
            dataset="mnist_5k",
            architecture="fc",
            depth=1,
            released_root=str(bucket),
            lookup_index=False,
        )
    )
    assert gs_form["test_accuracy"] == result["test_accuracy"] and gs_form["index"] is None


def _small(x: np.ndarray) -> np.ndarray:
    """28x28 digits -> 8x8 (crop to 24x24, average 3x3 blocks): cheap pooled kernels."""
    return x[:, 2:26, 2:26].reshape(-1, 8, 3, 8, 3, 1).mean(axis=(2, 4)).astype(np.uint8)


@pytest.fixture(scope="module")
def digits8(tmp_path_factory):
    """An npz: dataset of 8x8 digits with 8,000 train images (mnist_5k's, twice) and 20 test."""
    raw = load_dataset("mnist_5k")
    x_train, y_train = _small(np.concatenate([raw.x_train] * 2)), np.tile(raw.y_train, 2)
    path = tmp_path_factory.mktemp("digits8") / "digits8.npz"
    x_test, y_test = _small(raw.x_test[:20]), raw.y_test[:20]
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    idx = class_balanced_indices(y_train, 1, 0)
    return path, x_train, y_train, x_test, y_test, idx


def test_new_layout_name_picks_the_paper_2_convnet_kernel(digits8, tmp_path):
    path, x_train, y_train, x_test, y_test, idx = digits8
    pre = Preprocessor.fit(x_train)  # nozca: standardised with train statistics
    images, labels = pre(x_train[idx]), centered_one_hot(y_train[idx], 10)
    _write_npz(tmp_path / "kip/mnist/ConvNet_ssize10_nozca_nol_noaug_ckpt0.npz", images, labels)
    config = EvaluateConfig(
        "released:kip/mnist/ConvNet_ssize10_nozca_nol_noaug_ckpt0",
        dataset=f"npz:{path}",
        released_root=str(tmp_path),
        jit_compile=False,
        kernel_memory_mib=1,  # tiles of two 8x8 pairs; the oracle below is untiled
    )
    tf.config.run_functions_eagerly(True)  # tracing the pooled kernel graph costs ~10x more
    try:
        result = evaluate_distilled(config)
    finally:
        tf.config.run_functions_eagerly(False)
    assert result["network"]["architecture"] == "convnet" and result["network"]["depth"] == 3
    assert result["kernel"] == "ntk" and result["test_examples"] == 20
    assert "index_error" in result  # no kip.csv in this folder: reported, not fatal
    # Oracle: the same KRR through KIPModel.predict on the same preprocessed test images.
    model = KIPModel(architectures.get("convnet", 3, num_classes=10), images, labels)
    pred = model.predict_with(pre(x_test)).numpy()
    assert result["test_accuracy"] == np.mean(pred.argmax(1) == y_test)
    assert result["test_accuracy"] > 0.3  # natural 1-per-class digits: well above chance


def test_zca_names_fit_zca_like_nn_training(digits8, tmp_path):
    path, x_train, y_train, x_test, y_test, idx = digits8
    # nn_training: standardise with all 8,000 train images, ZCA on the first 3,000.
    pre = Preprocessor.fit(x_train, zca=True, zca_reg=0.1, zca_fit_count=3000)
    images, labels = pre(x_train[idx]), centered_one_hot(y_train[idx], 10)
    _write_npz(tmp_path / "kip/mnist/ssize10_zca_nol_noaug_ckpt0.npz", images, labels)
    source = "released:kip/mnist/ssize10_zca_nol_noaug_ckpt0"
    config = dict(architecture="fc", released_root=str(tmp_path), jit_compile=False)
    result = evaluate_distilled(EvaluateConfig(source, dataset=f"npz:{path}", **config))
    prep = result["preprocessing"]
    assert prep["zca"] is True and prep["layer_norm"] is True and prep["zca_reg"] == 0.1
    assert prep["zca_fit"] == "first 3000 of 8000 train images (nn_training)"
    model = KIPModel(architectures.get("fc", 1, num_classes=10), images, labels)
    pred = model.predict_with(pre(x_test)).numpy()
    assert result["test_accuracy"] == np.mean(pred.argmax(1) == y_test)
    _write_npz(
        tmp_path / "kip/mnist/ssize10_zca_l_noaug_ckpt0.npz", np.ones((10, 28, 28, 1)), labels
    )
    with pytest.raises(ValueError, match=r"minus its last 5000 images, but 'mnist_5k' has only"):
        evaluate_distilled(EvaluateConfig(source.replace("nol", "l"), dataset="mnist_5k", **config))


@pytest.mark.parametrize(
    "source, extra, match",
    [
        (
            "kip/cifar10/ssize10_nozca_nol_noaug_ckpt0",
            {"architecture": "fc"},
            r"images have shape \(32, 32, 3\) but dataset 'mnist_5k' has images of shape "
            r"\(28, 28, 1\)",
        ),
        (
            "kip/mnist/ssize10_nozca_l_noaug_ckpt2",
            {"architecture": "fc"},
            r"labels have 5 columns but dataset 'mnist_5k' has 10 classes.*expected \(10, 10\)",
        ),
        (
            "kip/mnist/ssize20_nozca_nol_noaug_ckpt0",
            {},
            r"holds 10 images but its name says ssize20",
        ),
        (
            "kip/mnist/ssize10_nozca_nol_noaug_ckpt0",
            {},
            r"old-layout released names carry none\); pass --architecture",
        ),
        ("kip/mnist/ConvNet_ssize10_nozca_nol_noaug_ckpt9", {}, r"File not found.*ckpt9.npz"),
        (None, {"kernel_memory_mib": 0}, r"kernel_memory_mib must be a positive.*=0"),
    ],
)
def test_bad_input_names_the_value_and_the_fix(bucket, source, extra, match):
    if source is None:
        with pytest.raises(ValueError, match=match):
            EvaluateConfig("run", **extra)
        return
    config = {"dataset": "mnist_5k", "released_root": str(bucket), **extra}
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        evaluate_distilled(EvaluateConfig(f"released:{source}", **config))


def test_script_error_on_an_unreachable_bucket_is_one_line_and_quick():
    source = "released:kip/cifar10/ConvNet_ssize100_zca_nol_noaug_ckpt1000"
    match = "error: Could not read 'gs://kip-datasets/kip/cifar10/"
    start = time.monotonic()
    proc = _script(f"--distilled={source}", "--timeout=20")
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(match), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - start < 120


def test_every_launch_script_reports_errors_through_tfkip_cli():
    for script in sorted((REPO / "launch").glob("*.py")):
        text = script.read_text()
        if 'if __name__ == "__main__":' not in text:
            continue  # a flags module
        entry = text.split('if __name__ == "__main__":', 1)[1]
        assert "cli.run(main)" in entry and "app.run(" not in entry, script.name


def test_run_pictures_show_the_natural_start_beside_the_result_at_each_evaluation(run_dir):

    raw = load_dataset("mnist_5k")
    pre = Preprocessor.fit(raw.x_train)
    idx = class_balanced_indices(raw.y_train, 1, 0)
    with np.load(run_dir / "distilled.npz") as z:
        images, labels = z["images"], z["labels"]
    expected = image_grid(images, labels, natural=pre(raw.x_train[idx]), natural_labels=labels)
    png = tf.io.decode_png(tf.io.read_file(str(run_dir / "support.png"))).numpy()
    np.testing.assert_array_equal(png, expected)
    assert png.shape[0] >= 10 * 84  # ten class rows of 28 x 28 images shown at 84 px
    steps = sorted(
        event.step
        for path in (run_dir / "tb").glob("events.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag == "support"
    )
    assert steps == [r["step"] for r in _metrics(run_dir)] == [0, 2]
