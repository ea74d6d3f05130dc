"""The launch scripts' flags (the interface of issues 3 and 4) and `launch/label_solve.py`."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

ISSUE_3_FLAGS = [
    "dataset",
    "data_dir",
    "architecture",
    "depth",
    "W_std",
    "b_std",
    "parameterization",
    "kernel",
    "support_per_class",
    "target_batch_size",
    "learning_rate",
    "steps",
    "learn_labels",
    "zca",
    "augment",
    "reg",
    "seed",
    "eval_every",
    "dtype",
    "workdir",
]
ISSUE_4_FLAGS = ["strategy", "tpu", "num_cpu_devices", "steps_per_loop", "checkpoint_every"]


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def _help_blocks(text: str) -> dict[str, str]:
    """``{flag name: its help text}`` from absl's ``--help`` output."""
    blocks, name = {}, None
    for line in text.splitlines():
        match = re.match(r"^\s+--(?:\[no\])?(\w+):\s*(.*)$", line)
        if match:
            name = match.group(1)
            blocks[name] = match.group(2)
        elif name and line.startswith("    "):
            blocks[name] += " " + line.strip()
        else:
            name = None
    return {k: re.sub(r"<[^>]*>:?", "", v).strip() for k, v in blocks.items()}


@pytest.mark.parametrize(
    "script, title",
    [("distill.py", "KIP: distil a dataset"), ("label_solve.py", "Label Solve: the closed-form")],
)
def test_help_lists_every_flag_with_help_text(script, title):
    result = _run(str(REPO / "launch" / script), "--help")
    assert result.returncode in (0, 1), result.stderr[-2000:]  # absl exits 1 after --help
    assert title in result.stdout  # the script's own docstring heads its --help
    blocks = _help_blocks(result.stdout)
    for name in ISSUE_3_FLAGS + ISSUE_4_FLAGS:
        assert name in blocks, f"--{name} missing from {script} --help"
        assert len(re.findall(r"[A-Za-z]{2,}", blocks[name])) >= 3, (name, blocks[name])


def test_label_solve_script_writes_natural_and_solved_lines(tmp_path):
    workdir = tmp_path / "ls"
    result = _run(
        str(REPO / "launch" / "label_solve.py"),
        "--dataset=mnist_5k",
        "--architecture=fc",
        "--depth=1",
        "--support_per_class=1",
        f"--workdir={workdir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["labels"] for r in lines] == ["natural", "solved"]
    for record in lines:
        assert {"test_accuracy", "test_mse"} <= set(record)
    natural, solved = lines
    assert solved["test_accuracy"] > natural["test_accuracy"]
    with np.load(workdir / "distilled.npz") as z:
        assert z["images"].shape == (10, 28, 28, 1) and z["labels"].shape == (10, 10)
        assert not np.allclose(z["labels"], z["labels"].round(1))  # solved, not one-hot
    assert json.loads((workdir / "config.json").read_text())["job"] == "label_solve"
