"""Bad inputs fail early with messages that name the bad value."""

from __future__ import annotations

import numpy as np
import pytest
from kip_testlib import mnist

from tfkip import architectures
from tfkip.data import class_balanced_indices, support_size_to_per_class
from tfkip.kip import KIPModel, kip_loss, label_solve
from tfkip.train.config import DistillConfig
from tfkip.train.distill import run_distillation
from tfkip.train.label_solve import run_label_solve

NET = architectures.get("fc", 1)
RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 8, 8, 1))
Y = np.eye(2)[[0, 1, 0, 1]] - 0.5


def test_support_size_not_a_multiple_of_the_class_count():
    with pytest.raises(ValueError, match=r"multiple of num_classes=10.*support_size=15"):
        support_size_to_per_class(15, 10)
    assert support_size_to_per_class(20, 10) == 2
    with pytest.raises(ValueError, match="support_per_class must be a positive integer"):
        DistillConfig(support_per_class=0)
    with pytest.raises(ValueError, match="per_class=1.5"):
        class_balanced_indices(np.array([0, 1, 0, 1]), 1.5, seed=0)


def test_target_batch_not_a_multiple_of_the_class_count(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size=105"):
        run_distillation(DistillConfig(target_batch_size=105, steps=1, workdir=str(tmp_path)))


def test_class_with_fewer_images_than_requested(tmp_path):
    labels = np.array([0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"Class 1 has only 2 images but per_class=3"):
        class_balanced_indices(labels, 3, seed=0)
    # mnist_5k has 400 train images per class.
    with pytest.raises(ValueError, match=r"only 400 images but per_class=401"):
        run_distillation(DistillConfig(support_per_class=401, steps=0, workdir=str(tmp_path)))


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown dataset name.*no_such_dataset"):
        run_distillation(DistillConfig(dataset="no_such_dataset", workdir=str(tmp_path)))
    with pytest.raises(ValueError, match="no_such_dataset"):
        run_label_solve(DistillConfig(dataset="no_such_dataset", workdir=str(tmp_path)))


@pytest.mark.parametrize("name", ["kernel_batch_size", "kernel_memory_mib"])
def test_bad_kernel_tiling_settings_are_named(name):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer or None.*{name}=0"):
        DistillConfig(**{name: 0})
    assert getattr(DistillConfig(**{name: 64}), name) == 64


def test_unknown_architecture():
    with pytest.raises(ValueError, match=r"Unknown architecture.*architecture='resnet'"):
        DistillConfig(architecture="resnet")
    with pytest.raises(ValueError, match=r"name='resnet'"):
        architectures.get("resnet")


def test_wrong_shaped_support_labels():
    with pytest.raises(ValueError, match=r"support_labels.shape=\(3, 2\)"):
        KIPModel(NET, X, Y[:3])
    with pytest.raises(ValueError, match=r"support_labels.shape=\(4,\)"):
        KIPModel(NET, X, np.zeros(4))


def test_nan_support_images():
    bad = X.copy()
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="support_images contains NaN"):
        KIPModel(NET, bad, Y)
    with pytest.raises(ValueError, match="support_labels contains NaN"):
        KIPModel(NET, X, np.where(Y > 0, np.inf, Y))


def test_bad_kernel_name(tmp_path):
    with pytest.raises(ValueError, match=r"kernel='rbf'"):
        kip_loss(NET.kernel_fn, X, Y, X, Y, kernel="rbf")
    with pytest.raises(ValueError, match=r"kernel='rbf'"):
        label_solve(NET.kernel_fn, X, X, Y, kernel="rbf")
    with pytest.raises(ValueError, match=r"kernel='rbf'"):
        KIPModel(NET, X, Y, kernel="rbf")
    with pytest.raises(ValueError, match=r"kernel='rbf'"):
        DistillConfig(kernel="rbf")


def test_other_bad_model_arguments():
    with pytest.raises(ValueError, match=r"dtype='float16'"):
        KIPModel(NET, X, Y, dtype="float16")
    with pytest.raises(ValueError, match=r"reg=-1"):
        KIPModel(NET, X, Y, reg=-1)
    with pytest.raises(ValueError, match="tfkip.kernels Network"):
        KIPModel("fc", X, Y)
    with pytest.raises(ValueError, match="spatial"):
        KIPModel(_spatial_net(), X, Y)


def _spatial_net():
    from tfkip import kernels as k

    return k.serial(k.Conv(8, (3, 3), padding="SAME"), k.Relu())


def test_support_images_of_the_wrong_shape_for_the_data(tmp_path):
    data = mnist()
    model = KIPModel(NET, data.x_train[:10], data.y_train[:10])
    with pytest.raises(ValueError, match=r"per-example shape"):
        model.kip_loss(X, Y)
