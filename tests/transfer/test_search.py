"""The validation search: rows, selection on the train-split validation set, resume, errors."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from tfkip import data
from tfkip.transfer import TrainConfig
from tfkip.transfer import search as search_lib
from tfkip.transfer import search as search_module
from tfkip.transfer.search import SearchConfig, read_rows, search, validation_split


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A distill-workdir layout holding the 10 natural images a KIP run starts from."""
    prepared = data.prepare("mnist_5k", dtype=np.float32)
    idx = data.class_balanced_indices(prepared.labels_train, 1, seed=0)
    path = str(tmp_path_factory.mktemp("distill") / "run")
    os.makedirs(path)
    np.savez(
        os.path.join(path, "distilled.npz"),
        images=prepared.x_train[idx],
        labels=prepared.y_train[idx],
    )
    config = {"dataset": "mnist_5k", "architecture": "fc", "depth": 1, "zca": False}
    config.update(seed=0, dtype="float32", preprocessing=prepared.preprocessor.get_config())
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def _config(run_dir, workdir, **kw):
    base = TrainConfig(distilled=run_dir, width=64, steps=40, verbose=0)
    grid = dict(lr_factors=(0.5, 1.0), l2s=(0.0,), centers=(True, False))
    grid.update(parameterizations=("ntk",), validation_size=300)
    grid.update(kw)
    return SearchConfig(base=base, workdir=str(workdir), **grid)


def test_search_selects_on_validation_writes_rows_and_hparams_and_resumes(
    run_dir, tmp_path, monkeypatch
):
    workdir = tmp_path / "search"
    tested = []
    original = search_lib.train_on_arrays

    def spy(images, labels, x_test, labels_test, config, **kw):
        tested.append(x_test.shape[0])
        return original(images, labels, x_test, labels_test, config, **kw)

    monkeypatch.setattr(search_lib, "train_on_arrays", spy)
    result = search(_config(run_dir, workdir))
    rows = read_rows(str(workdir / "search.jsonl"))
    assert len(rows) == 4 and result["num_settings"] == 4
    best = max(rows.values(), key=lambda r: (r["validation_accuracy"], -r["validation_loss"]))
    assert result["best"]["key"] == best["key"]
    assert tested == [1000]  # only the chosen setting ever saw the test split
    assert result["best"]["setting"]["center"]  # centring wins on 10 images
    for row in rows.values():
        assert 0.0 <= row["validation_accuracy"] <= 1.0 and row["steps"] == 40
    lr = result["learning_rates_ntk"]["ntk"]
    assert rows["lr0.5_l20_centred_ntk"]["learning_rate"] == pytest.approx(0.5 * lr)
    assert 0.0 < result["test_accuracy"] <= 1.0
    assert os.path.exists(workdir / "best" / "model.keras")
    trials = sorted(os.listdir(workdir / "hparams"))
    assert [t for t in trials if not t.startswith("events")] == sorted(rows)
    assert any(t.startswith("events") for t in trials)  # the hparams_config

    # Half done: drop two rows (and tear the last line); the rerun, with two worker
    # processes, trains only those two, and they give the numbers of the first run.
    lines = (workdir / "search.jsonl").read_text().splitlines()
    (workdir / "search.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    again = search(_config(run_dir, workdir, parallel=2))
    now = (workdir / "search.jsonl").read_text().splitlines()
    assert now[:2] == lines[:2] and len(now) == 4  # two kept, two new rows
    redone = read_rows(str(workdir / "search.jsonl"))
    assert sorted(redone) == sorted(rows)
    for key, row in rows.items():  # same seed, same setting: the same numbers
        assert redone[key]["validation_loss"] == pytest.approx(row["validation_loss"], rel=1e-4)
    assert again["best"]["key"] == result["best"]["key"]
    longer = TrainConfig(distilled=run_dir, width=64, steps=41, verbose=0)
    with pytest.raises(ValueError, match=r"different base settings.*changed=\['steps'\]"):
        search(dataclasses.replace(_config(run_dir, workdir), base=longer))
    # A search validated on another split (an older tfkip's: the train split's last
    # images) is not resumed with this one.
    manifest_path = workdir / search_module.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    del manifest["validation_split"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"changed=\['validation_split'\]"):
        search(_config(run_dir, workdir))


def test_bad_search_input_is_refused(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"L2 grid is empty.*--l2_grid=.*Received: l2s=\(\)"):
        _config(run_dir, tmp_path, l2s=())
    with pytest.raises(ValueError, match=r"Received: parameterizations=\(\)"):
        _config(run_dir, tmp_path, parameterizations=())
    with pytest.raises(ValueError, match=r"Unknown parameterization|parameterization"):
        _config(run_dir, tmp_path, parameterizations=("muP",))
    with pytest.raises(ValueError, match="parallel must be an integer >= 1"):
        _config(run_dir, tmp_path, parallel=0)
    prepared = data.prepare("mnist_5k", dtype=np.float32)
    with pytest.raises(ValueError, match=r"smaller than the train split.*4000 images.*=4000"):
        validation_split(prepared, 4000)
    # mnist_5k's train split is sorted by label: its last 300 images are all 9s. The split
    # takes the last 30 of every class instead.
    assert set(prepared.labels_train[-300:]) == {9}
    x_val, labels_val = validation_split(prepared, 300)
    assert np.bincount(labels_val, minlength=10).tolist() == [30] * 10
    index = np.concatenate([np.flatnonzero(prepared.labels_train == c)[-30:] for c in range(10)])
    np.testing.assert_array_equal(x_val, prepared.x_train[np.sort(index)])
    # Unequal classes: shares 2.5, 1.5, 1 rounded by largest remainder (ties in class
    # order) to 3, 1, 1, adding up to the size asked for; each class's last images.
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    uneven = dataclasses.replace(prepared, x_train=np.arange(10.0), labels_train=labels)
    x_val, labels_val = validation_split(uneven, 5)
    assert x_val.tolist() == [2.0, 3.0, 4.0, 7.0, 9.0]
    assert labels_val.tolist() == [0, 0, 0, 1, 2]
