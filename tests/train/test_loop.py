"""The training loop and the main jobs in this process (default strategy): XLA compilation
of the per-replica step, strategy names, batch divisibility, refusing a workdir of another
configuration, ``steps=0``, atomic outputs, gfile paths, precision policy."""

from __future__ import annotations

import json
import pathlib
import types

import numpy as np
import pytest
import tensorflow as tf
from train_testlib import fc1_trainer, max_rel, metrics

from tfkip import architectures, train
from tfkip.data import class_balanced_indices, prepare
from tfkip.kip import KIPModel
from tfkip.train.config import DistillConfig
from tfkip.train.distill import run_distillation
from tfkip.train.loop import KIPTrainer, resolve_target_pipeline
from tfkip.train.workdir import ConfigMismatchError

TINY = dict(target_batch_size=100, eval_every=2, checkpoint_every=2, steps_per_loop=2)


@pytest.fixture(scope="module")
def data():
    return prepare("mnist_5k")


@pytest.fixture(scope="module")
def trainer(data):
    return fc1_trainer(data)


def test_per_replica_step_compiles_with_xla(trainer, data):
    assert trainer.jit_compile
    x, y = tf.constant(data.x_train[:100]), tf.constant(data.y_train[:100])
    batch = (tf.constant(0, tf.int64), x, y, *trainer.model.target_variances(x))
    hlo = trainer._replica_grads.experimental_get_compiler_ir(*batch)(stage="hlo")
    assert "HloModule" in hlo
    assert 'op_type="Cholesky"' in hlo  # the solve is inside the compiled program
    assert "f64[10,28,28,1]" in hlo  # the support-image gradient is part of the program
    loss, accuracy, grads = trainer._replica_grads(*batch)
    assert np.isfinite(float(loss)) and grads[0].shape == (10, 28, 28, 1)


def test_default_strategy_fuses_the_update_into_the_step(data):
    """Under the default strategy the optimizer's update runs in the step's XLA program:
    same training as the update outside XLA (to rounding), one program per step."""
    runs = {}
    for fuse in (True, False):
        trainer = fc1_trainer(data, fuse_update=None if fuse else False)
        assert trainer.fuse_update is fuse
        losses = [trainer.train(0, 3), trainer.train(3, 2)]
        assert trainer.model.optimizer.iterations.numpy() == 5
        runs[fuse] = (np.array(losses), trainer.model.support_images.numpy())
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-12)
    assert max_rel(runs[True][1], runs[False][1]) <= 1e-12
    with pytest.raises(ValueError, match=r"fuse_update=True needs jit_compile=True"):
        fc1_trainer(data, fuse_update=True, jit_compile=False)


def test_cached_target_variances_train_as_computed_ones(data):
    """FC1's target variances come from the pool cache by default; the training equals
    computing them in every step (to rounding)."""
    runs = {}
    for cache in (None, False):
        trainer = fc1_trainer(data, cache_target_variances=cache)
        assert trainer.cache_target_variances is (cache is None)
        assert len(trainer._target_pool()) == (3 if cache is None else 2)
        losses = [trainer.train(0, 3), trainer.train(3, 2)]
        runs[cache] = (np.array(losses), trainer.model.support_images.numpy())
    # The pool's norms round differently from the step's (~1e-16); the ridge solve (reg
    # 1e-6) amplifies that to ~1e-12 in the loss, and Adam (its first steps move every
    # pixel by ~lr, whatever the gradient's size) to ~4e-9 in the support images, as
    # between the default and mirrored strategies (test_train_mirrored: 1e-8).
    np.testing.assert_allclose(runs[None][0], runs[False][0], rtol=1e-9)
    assert max_rel(runs[None][1], runs[False][1]) <= 1e-8
    # Spatial networks keep a position map per image and nonlinearity: no cache.
    assert not architectures.get("conv", 2).flat_variances
    assert architectures.get("fc", 3).flat_variances


def test_training_loop_runs_and_continues(trainer):
    loss_a, _ = trainer.train(0, 3)
    loss_b, _ = trainer.train(3, 3)
    assert np.isfinite(loss_a) and np.isfinite(loss_b)
    assert trainer.model.optimizer.iterations.numpy() == 6


def test_in_step_and_dataset_targets_train_the_same_bit_for_bit(data):
    runs = {}
    for pipeline in ("in_step", "dataset"):
        trainer = fc1_trainer(data, target_pipeline=pipeline)
        assert trainer.target_pipeline == pipeline
        losses = [trainer.train(0, 3), trainer.train(3, 2)]
        runs[pipeline] = (losses, trainer.model.support_images.numpy())
    assert runs["in_step"][0] == runs["dataset"][0]
    np.testing.assert_array_equal(runs["in_step"][1], runs["dataset"][1])
    # The steps really moved the support set.
    assert not np.array_equal(runs["in_step"][1], fc1_trainer(data).model.support_images)


def test_in_step_targets_are_the_sampler_batches(trainer, data):
    """A step's target batch is ``pool[sampler.indices(step)]``: the loss of step 7 equals
    the compiled step's loss on that batch (before the step moves the support)."""
    assert trainer.target_pipeline == "in_step"  # "auto" off TPU
    idx = trainer.sampler.indices(7).numpy()
    variances = [tf.gather(v, idx) for v in trainer._target_pool()[2:]]
    expected, _, _ = trainer._replica_grads(
        tf.constant(7, tf.int64),
        tf.constant(data.x_train[idx]),
        tf.constant(data.y_train[idx]),
        *variances,
    )
    loss, _ = trainer.train(7, 1)
    assert loss == float(expected)


def test_bad_target_pipeline(data):
    with pytest.raises(ValueError, match=r"target_pipeline must be one of .*'tf.data'"):
        fc1_trainer(data, target_pipeline="tf.data")


def test_auto_target_pipeline_is_the_dataset_on_tpu_only():
    default = train.get_strategy("default")
    # A TPUStrategy cannot be built without a TPU; resolution only looks at the type.
    tpu = object.__new__(tf.distribute.TPUStrategy)
    assert resolve_target_pipeline("auto", default) == "in_step"
    assert resolve_target_pipeline("auto", tpu) == "dataset"
    assert resolve_target_pipeline("in_step", tpu) == "in_step"
    assert resolve_target_pipeline("dataset", default) == "dataset"


def test_bad_strategy_name():
    with pytest.raises(ValueError, match=r"Unknown strategy.*strategy='mirored'"):
        train.get_strategy("mirored")
    with pytest.raises(ValueError, match=r"strategy='mirored'"):
        DistillConfig(strategy="mirored")


def test_unreachable_tpu_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Cannot reach a TPU at tpu='grpc://127.0.0.1:1'"):
        train.get_strategy("tpu", tpu="grpc://127.0.0.1:1")
    with pytest.raises(ValueError, match="TPUs have no float64"):
        DistillConfig(strategy="tpu", dtype="float64")


def test_cpu_devices_cannot_be_split_after_initialisation():
    tf.constant(1.0)  # TensorFlow is initialised
    current = len(tf.config.list_logical_devices("CPU"))
    with pytest.raises(ValueError, match=f"num_cpu_devices={current + 3}"):
        train.configure_cpu_devices(current + 3)
    with pytest.raises(ValueError, match="num_cpu_devices=0"):
        train.configure_cpu_devices(0)


def test_indivisible_global_batch(data):
    three = types.SimpleNamespace(num_replicas_in_sync=3)
    with pytest.raises(ValueError, match=r"divisible by the number of replicas \(3\).*1000"):
        train.replica_batch_size(1000, three)
    assert train.replica_batch_size(1200, three) == 400
    model = KIPModel(architectures.get("fc", 1), data.x_train[:10], data.y_train[:10])
    with pytest.raises(ValueError, match=r"replicas \(3\)"):
        KIPTrainer(model, three, data.x_train, data.y_train, data.labels_train, 1000, 0)


def test_workdir_of_another_configuration_is_refused(tmp_path):
    workdir = str(tmp_path / "run")
    run_distillation(DistillConfig(steps=0, workdir=workdir, **TINY))
    # Settings that do not change the distilled set may change on resume.
    run_distillation(DistillConfig(steps=2, workdir=workdir, **dict(TINY, steps_per_loop=1)))
    assert [r["step"] for r in metrics(pathlib.Path(workdir))] == [0, 2]
    with pytest.raises(ConfigMismatchError) as err:
        run_distillation(
            DistillConfig(steps=4, workdir=workdir, seed=1, learning_rate=0.01, **TINY)
        )
    message = str(err.value)
    assert "learning_rate: 0.04 -> 0.01" in message and "seed: 0 -> 1" in message
    assert "steps" not in message.split("(")[1].split(")")[0]
    # A checkpoint without its config.json is refused too.
    (tmp_path / "run" / "config.json").unlink()
    with pytest.raises(ConfigMismatchError, match="no config.json"):
        run_distillation(DistillConfig(steps=4, workdir=workdir, **TINY))


def test_label_solve_workdir_is_not_a_kip_workdir(tmp_path):
    from tfkip.train.label_solve import run_label_solve

    workdir = str(tmp_path / "run")
    run_distillation(DistillConfig(steps=0, workdir=workdir))
    with pytest.raises(ConfigMismatchError, match="job: 'kip' -> 'label_solve'"):
        run_label_solve(DistillConfig(workdir=workdir))


def test_steps_0_writes_the_natural_support_and_its_evaluation(tmp_path, data):
    workdir = tmp_path / "natural"
    record = run_distillation(DistillConfig(steps=0, workdir=str(workdir), seed=3))
    idx = class_balanced_indices(data.labels_train, 1, 3)
    with np.load(workdir / "distilled.npz") as z:
        np.testing.assert_array_equal(z["images"], data.x_train[idx])
        np.testing.assert_array_equal(z["labels"], data.y_train[idx])
    records = metrics(workdir)
    assert len(records) == 1 and records[0]["step"] == 0
    assert record["test_accuracy"] == records[0]["test_accuracy"] > 0.3
    assert {"step", "test_accuracy", "test_mse", "train_loss"} <= set(records[0])
    for name in ("config.json", "support.png", "preprocessing.npz", "tb"):
        assert (workdir / name).exists(), name
    assert json.loads((workdir / "config.json").read_text())["steps"] == 0


def test_outputs_through_gfile_are_atomic_and_complete():
    """An in-memory ram:// workdir behaves like gs:// (nothing may use os/open directly);
    a run and its resume leave every output, no temporary file, and all summaries. The
    resume removes what a write interrupted by a kill left behind."""
    from tfkip.files import temp_name

    workdir = "ram://tfkip_test/run"
    run_distillation(DistillConfig(steps=2, workdir=workdir, **TINY))
    with tf.io.gfile.GFile(temp_name(workdir + "/distilled.npz"), "wb") as stale:
        stale.write(b"half of an npz")
    record = run_distillation(DistillConfig(steps=4, workdir=workdir, **TINY))  # resumes
    assert record["step"] == 4
    written = [
        tf.io.gfile.join(folder, name)[len(workdir) + 1 :]
        for folder, _, names in tf.io.gfile.walk(workdir)
        for name in names
    ]
    assert not [f for f in written if ".tmp-" in f or "_temp" in f], written
    top = set(tf.io.gfile.listdir(workdir))
    expected = {"config.json", "distilled.npz", "metrics.jsonl", "preprocessing.npz"}
    assert expected | {"support.png"} <= top
    assert tf.train.latest_checkpoint(f"{workdir}/checkpoints").endswith("ckpt-4")
    records = [json.loads(x) for x in tf.io.gfile.GFile(f"{workdir}/metrics.jsonl").readlines()]
    assert [r["step"] for r in records] == [0, 2, 4]
    events = tf.io.gfile.glob(f"{workdir}/tb/events.out.tfevents.*")
    tags = {
        v.tag
        for path in events
        for e in tf.compat.v1.train.summary_iterator(path)
        for v in e.summary.value
    }
    assert {
        "train/loss",
        "train/accuracy",
        "test/accuracy",
        "test/mse",
        "learning_rate",
        "steps_per_second",
        "target_images_per_second",
        "support",
    } <= tags


def test_precision_policy_disables_reduced_precision_matmuls(tmp_path):
    run_distillation(DistillConfig(steps=0, workdir=str(tmp_path / "p"), dtype="float32"))
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


def test_resume_with_augmentation_restores_its_random_state(tmp_path):
    """The augmentation's RNG state is part of the checkpoint: 2 + 2 steps == 4 steps."""
    aug = dict(TINY, augment=True, augmentations="flip,crop:2")
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    run_distillation(DistillConfig(steps=4, workdir=whole, **aug))
    run_distillation(DistillConfig(steps=2, workdir=parts, **aug))
    run_distillation(DistillConfig(steps=4, workdir=parts, **aug))
    with np.load(f"{whole}/distilled.npz") as a, np.load(f"{parts}/distilled.npz") as b:
        assert max_rel(b["images"], a["images"]) <= 1e-12


RF_RUN = dict(
    TINY,
    architecture="conv",
    depth=1,
    kernel="rf_nngp",
    rf_models=2,
    rf_width=8,
    target_batch_size=40,
    learn_labels=True,
    loss="platt",
    dtype="float32",
)


def test_random_feature_run_resumes_bit_exact(tmp_path):
    """RF-KIP: the twins are keyed by the step, the Platt temperature is checkpointed, so
    2 + 2 steps == 4 steps bit for bit; the set moved, and its record is complete."""
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    record = run_distillation(DistillConfig(steps=4, workdir=whole, **RF_RUN))
    run_distillation(DistillConfig(steps=2, workdir=parts, **RF_RUN))
    run_distillation(DistillConfig(steps=4, workdir=parts, **RF_RUN))
    with np.load(f"{whole}/distilled.npz") as a, np.load(f"{parts}/distilled.npz") as b:
        np.testing.assert_array_equal(b["images"], a["images"])
        np.testing.assert_array_equal(b["labels"], a["labels"])
    config = json.loads(pathlib.Path(whole, "config.json").read_text())
    assert config["kernel"] == "rf_nngp" and config["solve_dtype"] == "float64"
    assert config["rf_seed"] == config["seed"] and config["learning_rate"] == 0.04
    assert np.isfinite(record["test_accuracy"]) and record["step"] == 4


def test_random_feature_run_evaluates_with_the_exact_nngp_or_its_twins(tmp_path):
    """eval_kernel='exact': the in-run test accuracy of an RF run is the exact NNGP's (what
    `evaluate_distilled` gives the written set); 'model' (the RF default): its fixed
    twins' estimate, a different number."""
    from tfkip.evaluate import EvaluateConfig, evaluate_distilled

    exact_dir, model_dir = str(tmp_path / "exact"), str(tmp_path / "model")
    exact = run_distillation(
        DistillConfig(steps=2, workdir=exact_dir, eval_kernel="exact", **RF_RUN)
    )
    model = run_distillation(DistillConfig(steps=2, workdir=model_dir, **RF_RUN))
    assert DistillConfig(**RF_RUN).eval_kernel == "model"
    again = evaluate_distilled(EvaluateConfig(exact_dir, kernel="nngp"))
    assert again["kernel"] == "nngp"
    assert exact["test_mse"] == pytest.approx(again["test_mse"], rel=1e-4)
    assert exact["test_accuracy"] == pytest.approx(again["test_accuracy"], abs=1e-9)
    assert model["test_mse"] != pytest.approx(exact["test_mse"], rel=1e-4)


def test_random_feature_defaults_leave_the_exact_ones_alone():
    exact, rf = DistillConfig(), DistillConfig(kernel="rf_nngp")
    assert (exact.target_batch_size, exact.learning_rate, exact.reg) == (1000, 0.04, 1e-6)
    assert exact.solve_dtype == exact.dtype == "float64" and exact.loss == "mse"
    assert rf.solve_dtype == "float64" and rf.loss == "platt"
    assert (rf.target_batch_size, rf.rf_models, rf.rf_width) == (100, 4, 32)
    assert DistillConfig(kernel="rf_nngp", strategy="tpu", dtype="float32").solve_dtype == (
        "float32"
    )
    # RF steps run as TensorFlow graphs off TPU (oneDNN convolutions), exact ones with XLA.
    assert exact.jit_compile is True and rf.jit_compile is False
    assert DistillConfig(kernel="rf_nngp", strategy="tpu", dtype="float32").jit_compile
    assert DistillConfig(kernel="rf_nngp", jit_compile=True).jit_compile is True
    assert rf.rf_dtype is None and "jit_compile" not in rf.identity()
    with pytest.raises(ValueError, match="rf_dtype must be one of"):
        DistillConfig(kernel="rf_nngp", rf_dtype="float16")
    with pytest.raises(ValueError, match="jit_compile must be True, False or None"):
        DistillConfig(jit_compile="yes")
    with pytest.raises(ValueError, match="kernel must be one of"):
        DistillConfig(kernel="rf")
    with pytest.raises(ValueError, match="rf_models must be a positive integer"):
        DistillConfig(kernel="rf_nngp", rf_models=0)
    with pytest.raises(ValueError, match="loss must be 'mse' or 'platt'"):
        DistillConfig(loss="ce")
