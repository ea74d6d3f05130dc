"""Published-set names, the kip.csv / ls.csv reader, remote-path errors, nn_training's ZCA fit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tfkip.data import Preprocessor, layer_norm_rows, zca_whitening_matrix
from tfkip.sets.released import (
    UnreachablePathError,
    find_index_row,
    gfile_call,
    is_released,
    parse_released,
    read_index,
)

NAME = "ConvNet_ssize100_zca_nol_noaug_ckpt1000"


@pytest.mark.parametrize(
    "source",
    [
        f"released:kip/cifar10/{NAME}",
        f"released:kip/cifar10/{NAME}.npz",
        f"gs://kip-datasets/kip/cifar10/{NAME}.npz",
        f"https://storage.googleapis.com/kip-datasets/kip/cifar10/{NAME}.npz",
        f"https://storage.cloud.google.com/kip-datasets/kip/cifar10/{NAME}.npz?authuser=1",
    ],
)
def test_every_form_of_a_released_name_resolves_to_the_same_file(source, tmp_path):
    assert is_released(source)
    ref = parse_released(source)
    assert ref.relpath == f"kip/cifar10/{NAME}.npz"
    assert (ref.kind, ref.dataset, ref.layout, ref.architecture) == (
        "kip",
        "cifar10",
        "kip",
        "ConvNet",
    )
    assert (ref.ssize, ref.zca, ref.l, ref.aug, ref.ckpt, ref.preset) == (
        100,
        True,
        False,
        False,
        1000,
        "convnet",
    )
    assert ref.path(str(tmp_path)) == str(tmp_path / "kip" / "cifar10" / f"{NAME}.npz")
    assert ref.path() == f"gs://kip-datasets/kip/cifar10/{NAME}.npz"


def test_old_layout_and_label_solve_names():
    old = parse_released("released:kip/svhn/ssize500_nozca_nol_aug_ckpt46500")
    assert (old.layout, old.architecture, old.preset, old.dataset) == (
        "kip_old",
        None,
        None,
        "svhn_cropped",
    )
    assert (old.ssize, old.zca, old.aug, old.ckpt) == (500, False, True, 46500)
    ls = parse_released("gs://kip-datasets/ls/cifar100/ConvNet3_ssize1000_zca.npz")
    assert (ls.kind, ls.layout, ls.preset, ls.ssize, ls.zca, ls.aug, ls.ckpt) == (
        "ls",
        "ls",
        "convnet3",
        1000,
        True,
        None,
        0,
    )
    assert not is_released("/tmp/run") and not is_released("gs://my-bucket/x.npz")


@pytest.mark.parametrize(
    "source, match",
    [
        (
            "released:kip/cifar10/ConvNet_ssize100_zca_nol_ckpt1000",
            r"Not a KIP file name.*Received: name='ConvNet_ssize100_zca_nol_ckpt1000.npz'",
        ),
        (
            "released:cifar10/ConvNet_ssize100_zca.npz",
            r"\{kip\|ls\}/\{dataset\}/\{name\}.npz.*Received: 'released:cifar10/",
        ),
        (
            "released:ls/mnist/ConvNet_ssize10_nozca_nol_noaug_ckpt0",
            r"Files under ls/ are named '\{arch\}_ssize\{N\}_\{zca\|nozca\}.npz'",
        ),
        ("/data/ConvNet_ssize10.npz", "A released set is 'released:"),
    ],
)
def test_bad_released_names_name_the_value_and_the_grammar(source, match):
    with pytest.raises(ValueError, match=match):
        parse_released(source)


KIP_CSV = """architecture,dataset,ssize,zca,l,aug,ckpt,test_acc,test_mse,URL
ConvNet,cifar10,10,True,True,True,0,0.1648,0.0488,https://storage.cloud.google.com/kip-datasets/kip/cifar10/ConvNet_ssize10_zca_l_aug_ckpt0.npz
ConvNet,cifar10,10,True,True,True,6,0.2726,0.0455,https://storage.cloud.google.com/kip-datasets/kip/cifar10/ConvNet_ssize10_zca_l_aug_ckpt6.npz
ConvNet3,cifar10,500,False,False,False,50000,0.6710,0.0301,https://storage.cloud.google.com/kip-datasets/kip/cifar10/ConvNet3_ssize500_nozca_nol_noaug_ckpt50000.npz
ConvNet,svhn_cropped,500,False,False,True,1000,0.7977,,https://storage.cloud.google.com/kip-datasets/kip/svhn_cropped/ConvNet_ssize500_nozca_nol_aug_ckpt1000.npz
"""
LS_CSV = """architecture,dataset,ssize,zca,l,ckpt,test_acc,test_mse,URL
ConvNet,cifar10,10,True,False,0,0.2609,0.0470,https://storage.cloud.google.com/kip-datasets/ls/cifar10/ConvNet_ssize10_zca.npz
ConvNet,cifar10,10,False,False,0,0.2629,0.0471,https://storage.cloud.google.com/kip-datasets/ls/cifar10/ConvNet_ssize10_nozca.npz
"""
OLD_KIP_CSV = """dataset,ssize,zca,l,aug,ckpt,test_acc,test_mse,URL
svhn,500,nozca,nol,aug,46500,0.8196,0.02,https://storage.cloud.google.com/kip-datasets/kip/svhn/ssize500_nozca_nol_aug_ckpt46500.npz
"""


@pytest.fixture
def bucket(tmp_path):
    (tmp_path / "kip").mkdir()
    (tmp_path / "ls").mkdir()
    (tmp_path / "kip" / "kip.csv").write_text(KIP_CSV)
    (tmp_path / "ls" / "ls.csv").write_text(LS_CSV)
    return tmp_path


def test_index_reader_filters_and_types(bucket):
    rows = read_index(str(bucket), "kip", dataset="cifar10", architecture="ConvNet", zca=True)
    assert [r["ckpt"] for r in rows] == [0, 6]
    assert rows[1]["test_acc"] == 0.2726 and rows[1]["l"] is True and rows[1]["aug"] is True
    assert [r["ssize"] for r in read_index(str(bucket), ssize=500)] == [500, 500]
    assert read_index(str(bucket), aug=True, ssize=500)[0]["dataset"] == "svhn_cropped"
    assert read_index(str(bucket), dataset="svhn")[0]["test_mse"] is None  # empty cell
    assert read_index(str(bucket), ckpt=50000, l=False)[0]["architecture"] == "ConvNet3"
    ls = read_index(str(bucket), "ls", zca=False)
    assert len(ls) == 1 and ls[0]["test_acc"] == 0.2629 and ls[0]["aug"] is None
    assert len(read_index(str(bucket / "ls" / "ls.csv"))) == 2  # a .csv path directly


def test_find_index_row_by_url_and_by_fields(bucket, tmp_path_factory):
    ref = parse_released("released:kip/cifar10/ConvNet_ssize10_zca_l_aug_ckpt6")
    assert find_index_row(ref, str(bucket))["test_acc"] == 0.2726
    missing = parse_released("released:kip/cifar10/ConvNet_ssize10_zca_l_aug_ckpt8")
    assert find_index_row(missing, str(bucket)) is None
    old_root = tmp_path_factory.mktemp("old")
    (old_root / "kip").mkdir()
    (old_root / "kip" / "kip.csv").write_text(OLD_KIP_CSV)
    old = parse_released("released:kip/svhn/ssize500_nozca_nol_aug_ckpt46500")
    row = find_index_row(old, str(old_root))
    assert row["test_acc"] == 0.8196 and row["architecture"] is None and row["zca"] is False


def test_index_errors_name_the_value(bucket):
    with pytest.raises(ValueError, match=r"Unknown index filters \['size'\]"):
        read_index(str(bucket), size=10)
    (bucket / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"not a KIP index.*Received: columns=\['a', 'b'\]"):
        read_index(str(bucket / "bad.csv"))
    (bucket / "bad2.csv").write_text("dataset,ssize,zca,test_acc\nmnist,10,maybe,0.5\n")
    with pytest.raises(ValueError, match=r"line 2: column 'zca' must be True/False.*'maybe'"):
        read_index(str(bucket / "bad2.csv"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_index(str(bucket / "nowhere"))


def test_an_unreachable_bucket_gives_a_clear_error_quickly():
    start = time.monotonic()
    with pytest.raises(
        (UnreachablePathError, FileNotFoundError), match="gs://tfkip-no-such-bucket"
    ):
        read_index("gs://tfkip-no-such-bucket-4f1c", "kip", timeout=30)
    assert time.monotonic() - start < 45


def test_a_remote_call_that_hangs_is_cut_at_the_timeout():
    start = time.monotonic()
    with pytest.raises(UnreachablePathError, match=r"no answer within 0.3 s.*--released_root"):
        gfile_call(lambda: time.sleep(3), "gs://kip-datasets/kip/kip.csv", timeout=0.3)
    assert time.monotonic() - start < 2


def test_zca_fitted_like_nn_training_on_the_train_split_minus_a_holdout():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 3, 3, 2), dtype=np.uint8)
    pre = Preprocessor.fit(x, zca=True, zca_reg=0.1, zca_fit_count=30)
    full = Preprocessor.fit(x, zca=False)
    np.testing.assert_allclose(pre.mean, full.mean)  # standardised with all 40 images
    np.testing.assert_allclose(pre.std, full.std)
    rows = layer_norm_rows(full.standardize(x[:30]).reshape(30, -1))
    np.testing.assert_allclose(pre.zca_matrix, zca_whitening_matrix(rows, 0.1), atol=1e-10)
    assert not np.allclose(pre.zca_matrix, Preprocessor.fit(x, zca=True).zca_matrix)
    with pytest.raises(ValueError, match=r"between 1 and the number of images \(40\).*=41"):
        Preprocessor.fit(x, zca=True, zca_fit_count=41)
