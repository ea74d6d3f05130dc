"""KIP-compatible names, npz files and the catalogue CSV."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from sets_testlib import assert_bit_equal, make_arrays, make_metadata

from tfkip.sets import (
    CATALOG_COLUMNS,
    kip_filename,
    load_run,
    ls_filename,
    parse_kip_filename,
    read_kip_npz,
    write_catalog,
    write_kip_npz,
    write_tfrecord,
)
from tfkip.sets import npz as kip_npz_lib


@pytest.mark.parametrize("arch", ["ConvNet", "ConvNet3", "FC1", "Myrtle_10"])
@pytest.mark.parametrize("flags", [(True, False, False), (False, True, True)])
def test_kip_filename_round_trip(arch, flags):
    zca, learn, aug = flags
    name = kip_filename(arch, 100, zca, learn, aug, 1000)
    parsed = parse_kip_filename(name)
    assert parsed == {
        "layout": "kip",
        "architecture": arch,
        "ssize": 100,
        "zca": zca,
        "l": learn,
        "aug": aug,
        "ckpt": 1000,
    }


def test_known_names():
    assert kip_filename("ConvNet", 100, False, True, False, 1000) == (
        "ConvNet_ssize100_nozca_l_noaug_ckpt1000.npz"
    )
    old = parse_kip_filename("gs://kip-datasets/kip/cifar10/ssize10_zca_l_noaug_ckpt0.npz")
    assert old == {
        "layout": "kip_old",
        "architecture": None,
        "ssize": 10,
        "zca": True,
        "l": True,
        "aug": False,
        "ckpt": 0,
    }
    ls = parse_kip_filename(ls_filename("ConvNet3", 500, False))
    assert ls == {
        "layout": "ls",
        "architecture": "ConvNet3",
        "ssize": 500,
        "zca": False,
        "l": False,
        "aug": None,
        "ckpt": 0,
    }
    assert ls_filename("ConvNet", 10, True) == "ConvNet_ssize10_zca.npz"


@pytest.mark.parametrize(
    "name", ["ConvNet_ssize10_zca_l_noaug.npz", "distilled.npz", "ConvNet_ssizeX_zca.npz", ""]
)
def test_parse_rejects_other_names(name):
    with pytest.raises(ValueError, match="Not a KIP file name"):
        parse_kip_filename(name)


def test_kip_filename_rejects_bad_values():
    odd = kip_filename("A_ssize3_zca", 10, True, True, True, 0)  # Still parses back.
    assert parse_kip_filename(odd)["architecture"] == "A_ssize3_zca"
    with pytest.raises(ValueError, match="architecture"):
        kip_filename("kip/ConvNet", 10, True, True, True, 0)
    with pytest.raises(ValueError, match="support_size=-1"):
        kip_filename("ConvNet", -1, True, True, True, 0)
    with pytest.raises(ValueError, match="architecture"):
        kip_filename("", 10, True, True, True, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_write_read_npz_exactly_two_keys(tmp_path, dtype):
    images, labels = make_arrays(dtype=dtype)
    metadata = make_metadata(images, labels, step=1500)
    path = write_kip_npz(str(tmp_path / "cifar10"), images, labels, metadata)
    assert os.path.basename(path) == "ConvNet_ssize6_nozca_l_noaug_ckpt1500.npz"
    with np.load(path) as npz:
        assert sorted(npz.files) == ["images", "labels"]
    x, y = read_kip_npz(path)
    assert_bit_equal(x, images)
    assert_bit_equal(y, labels)
    _, _, m = load_run(path)  # Metadata comes back from the sidecar.
    assert m == metadata
    assert sorted(os.listdir(tmp_path / "cifar10")) == [
        os.path.basename(path),
        os.path.basename(path) + ".json",
    ]


def test_read_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros(2), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"lacks \['images', 'labels'\].*found=\['x', 'y'\]"):
        read_kip_npz(str(path))
    images, labels = make_arrays()
    good = tmp_path / "good.npz"
    np.savez(good, images=images, labels=labels)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz.*corrupt or truncated"):
        read_kip_npz(str(truncated))
    with pytest.raises(ValueError, match="File not found"):
        read_kip_npz(str(tmp_path / "missing.npz"))


def test_sidecar_checksum_is_verified(tmp_path):
    images, labels = make_arrays()
    path = write_kip_npz(str(tmp_path), images, labels, make_metadata(images, labels))
    np.savez(path, images=images + 1, labels=labels)
    with pytest.raises(ValueError, match="checksum"):
        load_run(path)


def test_npz_write_failure_leaves_nothing(tmp_path, monkeypatch):
    images, labels = make_arrays()
    metadata = make_metadata(images, labels)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(kip_npz_lib._sidecar, "sidecar_bytes", boom)
    with pytest.raises(OSError, match="disk full"):
        write_kip_npz(str(tmp_path), images, labels, metadata)
    assert os.listdir(tmp_path) == []


def test_catalog(tmp_path):
    root = tmp_path / "release"
    images, labels = make_arrays()
    m = make_metadata(images, labels, step=1000, test_accuracy=0.61, test_mse=0.031)
    new = write_kip_npz(str(root / "cifar10"), images, labels, m)
    write_kip_npz(str(root / "cifar10"), images, labels, m.replace(step=0, test_accuracy=None))
    (root / "svhn_cropped").mkdir()
    old = root / "svhn_cropped" / "ssize500_nozca_nol_aug_ckpt46500.npz"
    np.savez(old, images=images, labels=labels)
    ls = root / "ConvNet_ssize10_zca.npz"
    np.savez(ls, images=images, labels=labels)
    np.savez(root / "distilled.npz", images=images, labels=labels)  # Not an export: skipped.
    (root / "notes.json").write_text(json.dumps({"a": 1}))
    record = str(root / "rec" / "kip.tfrecord")
    write_tfrecord(record, images, labels, m.replace(dataset="mnist", zca=False))

    out = str(tmp_path / "catalog.csv")
    assert write_catalog(str(root), out) == 5
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CATALOG_COLUMNS
        rows = {row["URL"]: row for row in reader}
    assert rows[new] == {
        "architecture": "ConvNet",
        "dataset": "cifar10",
        "ssize": "6",
        "zca": "False",
        "l": "True",
        "aug": "False",
        "ckpt": "1000",
        "test_acc": "0.61",
        "test_mse": "0.031",
        "URL": new,
    }
    assert rows[str(old)]["dataset"] == "svhn_cropped"
    assert rows[str(old)]["architecture"] == ""
    assert (rows[str(old)]["ckpt"], rows[str(old)]["aug"]) == ("46500", "True")
    assert (rows[str(ls)]["aug"], rows[str(ls)]["l"], rows[str(ls)]["zca"]) == ("", "False", "True")
    assert rows[record]["dataset"] == "mnist"
    assert sum(r["ckpt"] == "0" for r in rows.values()) == 2
    with pytest.raises(ValueError, match="existing folder"):
        write_catalog(str(tmp_path / "nope"), out)
