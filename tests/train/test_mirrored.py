"""`mirrored` over 2 logical CPU devices equals `default` (float64): the distilled set after
20 steps, the train loss, the KRR test evaluation and Label Solve, for FC1, for Conv
depth 1 + Flatten, and for that Conv net's random-feature NNGP (twins keyed by the step:
every replica draws the same ones).

Logical CPU devices must be configured before TensorFlow runs its first op. pytest runs
other test modules (and their TensorFlow ops) in this process first, so the multi-device
part runs in a fresh subprocess, ``distributed_check.py``, which writes its results to an
npz that these tests compare (see its docstring for why the conv case uses ZCA).
"""

from __future__ import annotations

import numpy as np
import pytest
from train_testlib import REPO, max_rel, run

ARCHS = ["fc", "conv", "rf"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirrored")
    out = folder / "results.npz"
    script = REPO / "tests" / "train" / "distributed_check.py"
    code, log = run(script, [str(out)], folder / "log.txt", timeout=600)
    assert code == 0, log[-3000:]
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def test_two_logical_devices_two_replicas(results):
    assert int(results["logical_cpus"]) == 2
    for arch in ARCHS:
        assert int(results[f"{arch}/default/replicas"]) == 1
        assert int(results[f"{arch}/mirrored/replicas"]) == 2
        # The optimizer's update joins the XLA step only where nothing is all-reduced.
        assert bool(results[f"{arch}/default/fuse_update"])
        assert not bool(results[f"{arch}/mirrored/fuse_update"])


@pytest.mark.parametrize("arch", ARCHS)
def test_distilled_set_after_20_steps(results, arch):
    for key in ("images", "labels"):
        default, mirrored = results[f"{arch}/default/{key}"], results[f"{arch}/mirrored/{key}"]
        assert max_rel(mirrored, default) <= 1e-8, key
    natural_moved = results[f"{arch}/default/images"]
    assert np.all(np.isfinite(natural_moved))
    np.testing.assert_allclose(
        results[f"{arch}/mirrored/train"], results[f"{arch}/default/train"], rtol=1e-8
    )


def test_dataset_target_pipeline_gives_each_replica_the_same_shard(results):
    """2 replicas, FC1: the tf.data pipeline (TPU's default) and the in-step gather train
    the same support set, bit for bit."""
    for key in ("images", "labels", "train"):
        np.testing.assert_array_equal(
            results[f"fc/mirrored_dataset/{key}"], results[f"fc/mirrored/{key}"], err_msg=key
        )


@pytest.mark.parametrize("arch", ARCHS)
def test_test_evaluation(results, arch):
    for key in ("eval_before", "eval_after"):
        default, mirrored = results[f"{arch}/default/{key}"], results[f"{arch}/mirrored/{key}"]
        assert mirrored[0] == default[0]  # accuracy: same count of correct predictions
        np.testing.assert_allclose(mirrored[1], default[1], rtol=1e-8)
    # Training helped (the runs are real): the test MSE fell, or, for the Platt loss
    # (cross-entropy, not the MSE), the mean train loss of steps 10-20 is below 0-10's.
    if arch == "rf":
        loss_a, loss_b, _ = results[f"{arch}/default/train"]
        assert loss_b < loss_a
    else:
        after, before = (
            results[f"{arch}/default/eval_after"],
            results[f"{arch}/default/eval_before"],
        )
        assert after[1] < before[1]


@pytest.mark.parametrize("arch", ARCHS)
def test_label_solve(results, arch):
    default, mirrored = (
        results[f"{arch}/default/label_solve"],
        results[f"{arch}/mirrored/label_solve"],
    )
    assert default.shape == (10, 10)
    assert max_rel(mirrored, default) <= 1e-8
