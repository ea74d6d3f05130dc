"""benchmarks/rf_step.py: its FLOP count and one tiny variant end to end."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import rf_step  # noqa: E402

from tfkip import architectures  # noqa: E402


def test_forward_flops_of_rfads_convnet():
    """3 x [Conv 3x3 'SAME', ReLU, AvgPool 2x2] at 28x28x1, width 256: 28^2 9 * 1 * 256,
    14^2 9 * 256 * 256 and 7^2 9 * 256 * 256 multiply-adds (the readout is not a twin's)."""
    flops = rf_step.forward_flops(architectures.get("convnet3"), (28, 28, 1), 256)
    expected = 2 * 9 * 256 * (28 * 28 * 1 + 14 * 14 * 256 + 7 * 7 * 256)
    assert flops == pytest.approx(expected)
    fc = rf_step.forward_flops(architectures.get("fc", 1), (28, 28, 1), 64)
    assert fc == pytest.approx(2 * 784 * 64)


def test_one_tiny_variant_prints_its_row():
    cmd = [sys.executable, str(REPO / "benchmarks" / "rf_step.py"), "--models=1", "--width=4"]
    cmd += ["--target=20", "--support=10", "--steps=1", "--variants=graph_float32"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| graph_float32 |")]
    assert len(rows) == 1 and "failed" not in rows[0], out.stdout
