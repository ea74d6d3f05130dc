"""Transfer training on mnist_5k: end to end, refused mismatches, config, launch script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfkip import data
from tfkip.transfer import TrainConfig, check_compatible, fit_network, load_transfer_data, train
from tfkip.transfer.train import resolve_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "launch", "train_finite.py")
FLAGS = (
    "distilled dataset data_dir architecture depth width parameterization loss steps "
    "batch_size learning_rate seed workdir strategy tpu num_cpu_devices steps_per_loop "
    "checkpoint_every recipe [no]center l2 max_lr_factor [no]search lr_factor_grid l2_grid "
    "center_grid "
    "parameterization_grid validation_size parallel"
).split()


@pytest.fixture(scope="module")
def prepared():
    return data.prepare("mnist_5k", dtype=np.float32)


def _write_run(path, images, labels, preprocessing, **config):
    os.makedirs(path, exist_ok=True)
    np.savez(os.path.join(path, "distilled.npz"), images=images, labels=labels)
    settings = {"dataset": "mnist_5k", "architecture": "FC", "depth": 1, "zca": False}
    settings.update(preprocessing=preprocessing, seed=0, dtype="float32", **config)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(settings, f)
    return path


@pytest.fixture(scope="module")
def run_dir(prepared, tmp_path_factory):
    """A fake distill workdir holding the 10 natural images a KIP run starts from."""
    idx = data.class_balanced_indices(prepared.labels_train, 1, seed=0)
    path = str(tmp_path_factory.mktemp("distill") / "run")
    _write_run(
        path, prepared.x_train[idx], prepared.y_train[idx], prepared.preprocessor.get_config()
    )
    prepared.preprocessor.save(os.path.join(path, "preprocessing.npz"))
    return path


def test_train_end_to_end_writes_metrics_and_model(run_dir, prepared, tmp_path):
    workdir = str(tmp_path / "finite")
    config = TrainConfig(
        distilled=run_dir, width=32, steps=6, checkpoint_every=3, workdir=workdir, verbose=0
    )
    metrics = train(config)
    assert sorted(os.listdir(workdir)) == ["metrics.json", "model.keras", "tb"]
    with open(os.path.join(workdir, "metrics.json")) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(metrics))
    for key in ("test_accuracy", "test_loss", "learning_rate", "seconds_per_step"):
        assert np.isfinite(written[key]) and written[key] >= 0
    assert written["learning_rate_source"].startswith("ntk_estimate")
    assert written["learning_rate"] > 0
    assert written["steps"] == 6 and written["batch_size"] == 10
    assert written["config"]["architecture"] == "fc" and written["config"]["depth"] == 1
    model = keras.saving.load_model(os.path.join(workdir, "model.keras"))
    logits = model.predict(prepared.x_test, verbose=0)
    accuracy = np.mean(np.argmax(logits, 1) == prepared.labels_test)
    assert accuracy == pytest.approx(written["test_accuracy"], abs=1e-6)


def test_an_interrupted_run_resumes_from_its_backup(run_dir, tmp_path, monkeypatch):
    workdir = str(tmp_path / "resume")
    config = TrainConfig(
        distilled=run_dir, width=8, steps=6, checkpoint_every=2, workdir=workdir, verbose=0
    )
    original = keras.callbacks.BackupAndRestore.on_epoch_end

    def crash_after_second_backup(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise RuntimeError("preempted")

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", crash_after_second_backup)
    with pytest.raises(RuntimeError, match="preempted"):
        train(config)
    assert os.path.isdir(os.path.join(workdir, "backup"))
    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", original)
    metrics = train(config)  # resumes at epoch 2 with the optimizer's step count restored
    assert metrics["steps"] == 6
    assert not os.path.exists(os.path.join(workdir, "backup"))


def test_train_on_a_bare_npz_with_xent_and_a_given_learning_rate(run_dir, tmp_path):
    npz = os.path.join(run_dir, "distilled.npz")
    with pytest.raises(ValueError, match="dataset of .* is unknown"):
        train(TrainConfig(distilled=npz, steps=1, verbose=0))
    config = TrainConfig(
        distilled=npz,
        dataset="mnist_5k",
        architecture="conv",
        depth=1,
        width=4,
        loss="xent",
        learning_rate=0.01,
        center=True,
        steps=2,
        workdir=str(tmp_path / "xent"),
        verbose=0,
    )
    metrics = train(config)
    assert metrics["learning_rate"] == 0.01 and metrics["learning_rate_source"] == "given"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    model = keras.saving.load_model(str(tmp_path / "xent" / "model.keras"))
    assert model.name == "finite_centered" and len(model.trainable_weights) == 4


def test_mismatched_distilled_sets_are_refused(prepared, run_dir, tmp_path):
    images, labels = prepared.x_train[:10], prepared.y_train[:10]
    prep = prepared.preprocessor.get_config()
    small = _write_run(str(tmp_path / "shape"), images[:, ::2, ::2], labels, prep)
    with pytest.raises(ValueError, match=r"image_shape'\] must equal the images' shape \[14, 14"):
        load_transfer_data(small)  # the run's own record already disagrees
    bare = str(tmp_path / "small.npz")
    np.savez(bare, images=images[:, ::2, ::2], labels=labels)
    with pytest.raises(ValueError, match=r"shape \(14, 14, 1\) but 'mnist_5k' has .*\(28, 28, 1\)"):
        load_transfer_data(bare, dataset="mnist_5k")
    wide = _write_run(str(tmp_path / "labels"), images, np.zeros((10, 5), "float32"), prep)
    with pytest.raises(ValueError, match=r"one column per class .*\(10\).*labels.shape=\(10, 5\)"):
        load_transfer_data(wide)
    shifted = _write_run(str(tmp_path / "mean"), images, labels, {**prep, "mean": [0.5]})
    with pytest.raises(ValueError, match=r"preprocessed differently.*run mean=\[0.5\]"):
        load_transfer_data(shifted)
    with pytest.raises(ValueError, match="run zca=True, prepared zca=False"):
        check_compatible(images, labels, prepared, {**prep, "zca": True})
    with pytest.raises(ValueError, match=r"does not fit images of shape \(28, 28, 1\)"):
        train(TrainConfig(distilled=run_dir, architecture="convnet", depth=5, steps=1))


def test_train_config_validates_and_resolves_run_defaults():
    with pytest.raises(ValueError, match="multiple of checkpoint_every.*steps=10"):
        TrainConfig(steps=10, checkpoint_every=3)
    with pytest.raises(ValueError, match="loss='hinge'"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="architecture='resnet'"):
        TrainConfig(architecture="resnet")
    with pytest.raises(ValueError, match="learning_rate=-1"):
        TrainConfig(learning_rate=-1)
    run = {"architecture": "ConvNet", "depth": 2, "dataset": "cifar10", "readout": "gap"}
    run.update(W_std=1.5, b_std=None, width=4096, parameterization="ntk")
    resolved = resolve_config(TrainConfig(), run)
    assert (resolved.architecture, resolved.depth, resolved.readout) == ("convnet", 2, "gap")
    assert (resolved.W_std, resolved.b_std) == (1.5, None)
    assert (resolved.width, resolved.parameterization) == (1024, "standard")  # recipe, not run
    assert resolved.dataset == "cifar10"
    mine = resolve_config(TrainConfig(architecture="fc", dataset="mnist_5k"), run)
    assert (mine.architecture, mine.depth, mine.dataset) == ("fc", None, "mnist_5k")


def _run(args, timeout=240):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_launch_help_lists_every_flag():
    proc = _run([SCRIPT, "--help"])
    assert proc.returncode in (0, 1), proc.stderr  # absl's --help exits with status 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Trains a finite network" in proc.stdout
    for flag in FLAGS:
        assert f"--{flag}:" in proc.stdout, flag


def test_mirrored_strategy_gives_the_same_training_as_the_default(run_dir, tmp_path):
    """Two replicas, each half of the full batch: the summed gradients are the same."""
    script = textwrap.dedent(
        f"""
        import json
        from tfkip.train import get_strategy
        mirrored = get_strategy("mirrored", num_cpu_devices=2)
        from tfkip.transfer import TrainConfig, train
        out = {{}}
        for name, strategy in (("default", get_strategy("default")), ("mirrored", mirrored)):
            config = TrainConfig(distilled={run_dir!r}, width=16, steps=4, verbose=0,
                                 steps_per_loop=2, workdir={str(tmp_path)!r} + "/" + name)
            m = train(config, strategy)
            out[name] = [m["test_loss"], m["learning_rate"], m["num_replicas"]]
        print("RESULT" + json.dumps(out))
        """
    )
    proc = _run(["-c", script])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT")[-1])
    assert result["default"][2] == 1 and result["mirrored"][2] == 2
    np.testing.assert_allclose(result["mirrored"][:2], result["default"][:2], rtol=1e-4)


def test_centred_model_is_zero_at_initialisation():
    from tfkip import architectures
    from tfkip.finite import build_model
    from tfkip.transfer.train import _centered_model

    net = architectures.get("fc", 1, num_classes=3)
    config = TrainConfig(width=8, seed=3)
    model = _centered_model(build_model(net, (4, 4, 1), 8, seed=3), net, (4, 4, 1), config)
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 1)).astype("float32")
    np.testing.assert_array_equal(model(x), np.zeros((2, 3)))
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 4


def _free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_runs_and_only_the_chief_writes(run_dir, tmp_path):
    """Two worker processes on localhost (TF_CONFIG): Keras 3 fit needs our workarounds."""
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    workdir = str(tmp_path / "mw")
    args = [SCRIPT, f"--distilled={run_dir}", f"--workdir={workdir}", "--width=8", "--steps=2"]
    args += ["--strategy=multi_worker_mirrored", "--steps_per_loop=2", "--verbose=0"]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(tf_config)}
        procs.append(
            subprocess.Popen(
                [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err.decode()[-3000:]
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["num_replicas"] == 2 and metrics["steps"] == 2
    assert sorted(os.listdir(workdir)) == [".worker-worker-1", "metrics.json", "model.keras", "tb"]


def test_learning_rate_is_stable_for_the_support_it_trains_on(prepared):
    """Support images 3x larger than the held-out ones (as random-feature KIP sets are)
    have a ~9x larger NTK: the default recipe takes that estimate, the reference keeps the
    held-out one; natural-scale supports give both recipes the held-out estimate."""
    idx = data.class_balanced_indices(prepared.labels_train, 1, seed=0)
    images, labels = prepared.x_train[idx], prepared.y_train[idx]
    held_out = prepared.x_train[-20:]
    fitted = {}
    for recipe in ("default", "reference"):
        for scale in (1.0, 3.0):
            config = TrainConfig(
                recipe=recipe, architecture="fc", depth=1, width=64, steps=1, verbose=0,
                ntk_num_inputs=10,
            )  # fmt: skip
            result = fit_network(images * scale, labels, config, x_ntk=held_out)
            fitted[recipe, scale] = (result.learning_rate, result.learning_rate_source)
    rate = fitted["reference", 1.0][0]
    assert fitted["reference", 3.0] == (rate, "ntk_estimate")
    assert fitted["default", 1.0][1] in ("ntk_estimate", "ntk_estimate_support")
    large, source = fitted["default", 3.0]
    assert source == "ntk_estimate_support" and large < rate / 4
