"""DistilledMetadata, load_run and preprocessor."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sets_testlib import (
    assert_bit_equal,
    make_arrays,
    make_metadata,
    make_preprocessing,
    make_zca_matrix,
    write_workdir,
)

from tfkip.sets import DistilledMetadata, load_run, preprocess, preprocessor


def test_json_round_trip_and_defaults():
    images, labels = make_arrays()
    m = make_metadata(images, labels, zca=False, run_config={"seed": 0})
    back = DistilledMetadata.from_json(m.to_json())
    assert back == m
    assert back.image_shape == (4, 4, 3) and back.label_centering == "centered_one_hot"
    assert back.split == "train" and back.format_version == 1


@pytest.mark.parametrize(
    "change, match",
    [
        ({"bogus": 1}, "Unknown metadata fields \\['bogus'\\]"),
        ({"support_size": 0}, "support_size"),
        ({"image_shape": [4, 4]}, "image_shape"),
        ({"dtype": "int32"}, "floating dtype"),
        ({"label_centering": "weird"}, "label_centering"),
        ({"format_version": 99}, "newer tfkip"),
        ({"test_accuracy": float("nan")}, "finite"),
    ],
)
def test_from_dict_rejects_bad_fields(change, match):
    images, labels = make_arrays()
    data = {**make_metadata(images, labels).to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        DistilledMetadata.from_dict(data)


def test_wrong_types_raise_type_error():
    data = {**make_metadata(*make_arrays()).to_dict(), "zca": "yes"}
    with pytest.raises(TypeError, match="`zca` must be a bool. Received: zca='yes'"):
        DistilledMetadata.from_dict(data)
    with pytest.raises(TypeError, match="JSON object"):
        DistilledMetadata.from_json("[1, 2]")


def test_from_dict_names_missing_fields():
    data = make_metadata(*make_arrays()).to_dict()
    del data["dataset"], data["num_classes"]
    with pytest.raises(ValueError, match=r"missing required fields \['dataset', 'num_classes'\]"):
        DistilledMetadata.from_dict(data)


def test_preprocessing_must_agree_with_zca_flag_and_shape():
    images, labels = make_arrays()
    with pytest.raises(ValueError, match="preprocessing\\['zca'\\] must equal"):
        make_metadata(images, labels, zca=True, preprocessing=make_preprocessing(False))
    with pytest.raises(ValueError, match="image_shape"):
        make_metadata(images, labels, preprocessing=make_preprocessing(False, (8, 8, 3)))
    bad = make_preprocessing(False)
    del bad["std"]
    with pytest.raises(ValueError, match="missing keys \\['std'\\]"):
        make_metadata(images, labels, preprocessing=bad)


def test_check_arrays_names_the_mismatch():
    images, labels = make_arrays()
    m = make_metadata(images, labels)
    with pytest.raises(ValueError, match="images.dtype=float64"):
        m.check_arrays(images.astype(np.float64), labels)
    with pytest.raises(ValueError, match="labels.shape"):
        m.check_arrays(images, labels[:, :2])


def test_load_run_workdir(tmp_path):
    workdir = str(tmp_path / "run")
    images, labels = write_workdir(workdir, zca=True, dtype=np.float64)
    x, y, m = load_run(workdir)
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    assert (m.dataset, m.architecture, m.depth, m.kernel) == ("cifar10", "ConvNet", 3, "ntk")
    assert (m.step, m.test_accuracy, m.test_mse) == (40, 0.45, 0.04)  # Last metrics line.
    assert m.support_size == 6 and m.num_classes == 3 and m.dtype == "float64"
    assert m.learned_labels and m.zca and not m.augment
    assert m.preprocessing["zca"] and m.preprocessing["mean"] == [0.4, 0.5, 0.6]
    assert m.zca_matrix_file == os.path.join(workdir, "preprocessing.npz")
    assert m.run_config["seed"] == 0


def test_load_run_workdir_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_run(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="distilled.npz is missing"):
        load_run(str(tmp_path / "empty"))


def test_load_run_bare_npz_uses_kip_name(tmp_path):
    images, labels = make_arrays()
    folder = tmp_path / "svhn_cropped"
    folder.mkdir()
    path = folder / "ConvNet3_ssize6_nozca_nol_aug_ckpt500.npz"
    np.savez(path, images=images, labels=labels)
    _, _, m = load_run(str(path))
    assert (m.architecture, m.dataset, m.step) == ("ConvNet3", "svhn_cropped", 500)
    assert (m.zca, m.learned_labels, m.augment) == (False, False, True)

    plain = tmp_path / "whatever.npz"
    np.savez(plain, images=images, labels=labels)
    x, _, m = load_run(str(plain))
    assert (m.architecture, m.dataset, m.step, m.preprocessing) == ("unknown", "unknown", 0, None)
    assert_bit_equal(x, images)


def _direct(x_raw, prep, zca_matrix=None):
    """Per-image, loop-based oracle of the documented mapping."""
    out = []
    for img in x_raw.astype(np.float64):
        v = (img / prep["pixel_scale"] - np.array(prep["mean"])) / np.array(prep["std"])
        if zca_matrix is not None:
            v = v.ravel() - v.mean()
            v = (v / np.sqrt(np.sum(v * v))) @ zca_matrix
        out.append(v.reshape(img.shape))
    return np.stack(out)


@pytest.mark.parametrize("zca", [False, True])
def test_preprocessor_matches_direct_computation(zca):
    images, labels = make_arrays(dtype=np.float64)
    matrix = make_zca_matrix() if zca else None
    m = make_metadata(images, labels, zca=zca)
    raw = np.random.default_rng(3).integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
    fn = preprocessor(m, zca_matrix=matrix)
    got = fn(raw)
    assert got.dtype == np.float64 and got.shape == raw.shape
    np.testing.assert_allclose(got, _direct(raw, m.preprocessing, matrix), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fn(raw[0]), got[0], rtol=1e-12, atol=1e-12)  # Single image.
    m32 = make_metadata(*make_arrays(dtype=np.float32), zca=zca)
    assert preprocessor(m32, zca_matrix=matrix)(raw.astype(np.float32)).dtype == np.float32


def test_preprocessor_reads_zca_file_and_errors_without_it(tmp_path):
    images, labels = make_arrays()
    matrix = make_zca_matrix()
    np.save(tmp_path / "w.npy", matrix)
    m = make_metadata(images, labels, zca=True, zca_matrix_file=str(tmp_path / "w.npy"))
    raw = np.full((1, 4, 4, 3), 7, np.uint8)
    raw[0, 0, 0] = 200
    expected = _direct(raw, m.preprocessing, matrix).astype(np.float32)
    np.testing.assert_allclose(preprocessor(m)(raw), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="names no ZCA matrix file"):
        preprocessor(m.replace(zca_matrix_file=None))
    with pytest.raises(ValueError, match="not found"):
        preprocessor(m.replace(zca_matrix_file=str(tmp_path / "missing.npy")))
    with pytest.raises(ValueError, match="no `preprocessing` dict"):
        preprocessor(m.replace(zca=False, preprocessing=None))
    with pytest.raises(ValueError, match="x_raw.shape"):
        preprocessor(m)(np.zeros((2, 5, 5, 3)))


def test_workdir_preprocessor_matches_tfkip_data_preprocessor(tmp_path):
    """Independent oracle: the data team's Preprocessor, saved the way runs save it."""
    data_preprocess = pytest.importorskip("tfkip.data.preprocess")
    rng = np.random.default_rng(5)
    train = rng.integers(0, 256, size=(30, 4, 4, 3), dtype=np.uint8)
    test = rng.integers(0, 256, size=(7, 4, 4, 3), dtype=np.uint8)
    for zca in (False, True):
        pre = data_preprocess.Preprocessor.fit(train, zca=zca)
        workdir = tmp_path / f"run_zca{zca}"
        write_workdir(str(workdir), zca=zca, dtype=np.float64)
        pre.save(str(workdir / "preprocessing.npz"))
        config = json.loads((workdir / "config.json").read_text())
        config["preprocessing"] = pre.get_config()
        (workdir / "config.json").write_text(json.dumps(config))
        _, _, m = load_run(str(workdir))
        np.testing.assert_allclose(preprocessor(m)(test), pre(test), rtol=1e-10, atol=1e-12)


def test_preprocess_function_validates_matrix_shape():
    with pytest.raises(ValueError, match="zca_matrix.shape"):
        preprocess(np.zeros((1, 4, 4, 3)), make_preprocessing(True), np.eye(3))
