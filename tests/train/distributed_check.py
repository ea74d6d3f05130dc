"""Runs KIP steps, evaluation and Label Solve under one strategy; writes the results.

Used by ``test_distributed.py`` in a subprocess, because logical CPU devices must be
configured before TensorFlow runs its first op, which an in-process pytest cannot
guarantee (other test modules run TensorFlow first). Run as

  python tests/train/distributed_check.py OUT.npz

It splits the CPU into 2 logical devices, then for each architecture (FC1, Conv
depth 1 + Flatten, and that Conv net's random-feature NNGP with the Platt loss) and each
strategy ('default', 'mirrored' over the 2 devices) builds a
`KIPModel` (images and labels learned) under the strategy, runs 20 KIP steps with
`KIPTrainer` (two host calls of 10; for FC1 under 'mirrored' also with the `tf.data`
target pipeline, training only), and stores the support set, the train loss, the KRR
test evaluation (before and after) and Label Solve over part of the train split.

The conv case uses mnist_5k with ZCA whitening. Without it, MNIST's constant background
makes 3x3 patches of different images *identical*, i.e. at angle 0, where the ReLU NTK is
not differentiable in its inputs (d/dc of (pi - theta)/(2 pi) is 1/(2 pi sqrt(v1 v2 - c^2)),
infinite at c^2 = v1 v2). Whether such a pair lands exactly on the singularity depends on
float64 rounding, which differs between a 20-image and two 10-image XLA programs, and
the reference's Adam (epsilon 1e-8 on the bias-corrected sqrt(v)) turns the resulting
~1e-14 gradient differences at near-zero-gradient pixels into ~1e-7..1e-5 relative
differences of the support set within 20 steps. The distributed computation is not at
fault: with ZCA (no identical patches) default and mirrored agree to ~1e-13.
"""

from __future__ import annotations

import sys
import time

from tfkip.train import configure_cpu_devices

configure_cpu_devices(2)  # before any TensorFlow op

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfkip import architectures  # noqa: E402
from tfkip.data import class_balanced_indices, prepare  # noqa: E402
from tfkip.kip import KIPAdam, KIPModel  # noqa: E402
from tfkip.train import get_strategy  # noqa: E402
from tfkip.train.loop import KIPTrainer  # noqa: E402

# name, depth, target batch, ZCA, KIPModel options. "rf": the random-feature NNGP of the
# conv net (2 twins of width 8, new ones each step, keyed by the step) with the Platt loss.
RF = dict(kernel="rf_nngp", rf_models=2, rf_width=8, rf_seed=3, loss="platt")
ARCHITECTURES = {
    "fc": ("fc", 1, 100, False, {}),
    "conv": ("conv", 1, 20, True, {}),
    "rf": ("conv", 1, 40, True, RF),
}
N_TEST, EVAL_TILE, N_LS, LS_TILE = 300, 64, 600, 128


def run(
    strategy, data, arch: str, target_pipeline: str = "auto", evaluate: bool = True
) -> dict[str, np.ndarray]:
    """The support set and train losses after 20 steps; with ``evaluate``, also the test
    evaluation before and after, and Label Solve."""
    name, depth, target, _, options = ARCHITECTURES[arch]
    net = architectures.get(name, depth)
    idx = class_balanced_indices(data.labels_train, 1, seed=0)
    with strategy.scope():
        model = KIPModel(net, data.x_train[idx], data.y_train[idx], learn_labels=True, **options)
        model.compile(optimizer=KIPAdam(0.04))
        model.optimizer.build(model.trainable_variables)
    trainer = KIPTrainer(
        model,
        strategy,
        data.x_train,
        data.y_train,
        data.labels_train,
        target,
        seed=0,
        target_pipeline=target_pipeline,
    )
    x_test, y_test = data.x_test[:N_TEST], data.y_test[:N_TEST]
    before = trainer.evaluate(x_test, y_test, EVAL_TILE) if evaluate else None
    loss_a, _ = trainer.train(0, 10)
    loss_b, acc_b = trainer.train(10, 10)
    images, labels = model.distilled()
    out = {
        "images": images,
        "labels": labels,
        "train": np.array([loss_a, loss_b, acc_b]),
        "replicas": np.array(strategy.num_replicas_in_sync),
        "fuse_update": np.array(trainer.fuse_update),
    }
    if evaluate:
        after = trainer.evaluate(x_test, y_test, EVAL_TILE)
        out["eval_before"] = np.array([before["test_accuracy"], before["test_mse"]])
        out["eval_after"] = np.array([after["test_accuracy"], after["test_mse"]])
        out["label_solve"] = trainer.label_solve(
            data.x_train[:N_LS], data.y_train[:N_LS], 1e-6, LS_TILE
        )
    return out


def main(out: str) -> None:
    prepared = {zca: prepare("mnist_5k", zca=zca) for zca in (False, True)}
    results = {}
    strategies = {"default": get_strategy("default"), "mirrored": get_strategy("mirrored")}
    for arch in ARCHITECTURES:
        for name, strategy in strategies.items():
            start = time.perf_counter()
            data = prepared[ARCHITECTURES[arch][3]]
            for key, value in run(strategy, data, arch).items():
                results[f"{arch}/{name}/{key}"] = value
            print(f"{arch} {name}: {time.perf_counter() - start:.1f} s", flush=True)
    # The tf.data pipeline (TPU's default) under 2 replicas: the same batches per replica.
    dataset_run = run(strategies["mirrored"], prepared[False], "fc", "dataset", evaluate=False)
    for key, value in dataset_run.items():
        results[f"fc/mirrored_dataset/{key}"] = value
    results["logical_cpus"] = np.array(len(tf.config.list_logical_devices("CPU")))
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
