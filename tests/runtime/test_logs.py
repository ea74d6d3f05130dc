"""tfkip.runtime.logs: TensorFlow's start-up and per-save lines hidden unless asked for."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys

import pytest

from tfkip.runtime import logs

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv, verbose",
    [
        ([], False),
        (["--verbosity=1"], True),
        (["--verbosity", "2"], True),
        (["-v", "1"], True),
        (["-v=0"], False),
        (["--verbosity=-1"], False),
        (["--workdir=x"], False),
    ],
)
def test_verbose_requested(argv, verbose, monkeypatch):
    monkeypatch.delenv("TFKIP_VERBOSE_STARTUP", raising=False)
    assert logs.verbose_requested(["prog", *argv]) is verbose


def test_per_save_lines_are_dropped_and_others_kept(monkeypatch):
    monkeypatch.delenv("TFKIP_VERBOSE_STARTUP", raising=False)
    logs.quiet_tensorflow_info(["prog"])
    (drop,) = [
        f for f in logging.getLogger("absl").filters if isinstance(f, logs._DropPerSaveLines)
    ]

    def record(msg, level=logging.INFO):
        return logging.LogRecord("absl", level, "f.py", 1, msg, (), None)

    assert not drop.filter(record("Sharding callback duration: %s microseconds"))
    assert drop.filter(record("step 10/20: loss 0.03"))
    assert drop.filter(record("Sharding callback duration: 9", logging.WARNING))


def test_quiet_startup_hides_the_cxx_start_up_lines_and_keeps_others():
    script = (
        "import sys\n"
        "from tfkip.runtime.logs import quiet_startup\n"
        "quiet_startup()\n"
        "import tensorflow as tf\n"
        "print('after import', file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("TFKIP_VERBOSE_STARTUP", None)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "after import"
    for marker in logs.STARTUP_NOISE:
        assert marker not in proc.stderr, proc.stderr
