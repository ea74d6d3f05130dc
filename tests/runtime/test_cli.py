"""tfkip.runtime.cli.run: user errors as one line, tracebacks on request, absl semantics kept."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tfkip.runtime import cli

REPO = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from absl import flags
from tfkip.runtime import cli

_KIND = flags.DEFINE_string("kind", "ok", "What main does.")
_DIR = flags.DEFINE_string("dir", None, "Output folder of --kind=enospc.")

def main(argv):
    kind = _KIND.value
    if kind == "value":
        raise ValueError("--steps must be >= 1.\\n Received: steps=0")
    if kind == "missing":
        open("/nonexistent/tfkip/file.npz")
    if kind == "bug":
        raise RuntimeError("internal bug")
    if kind == "status":
        return 3
    if kind == "enospc":
        import tensorflow as tf
        with cli.own(_DIR.value, checkpoints="checkpoints"):
            with open(_DIR.value + "/.out.npz.tmp-0a1b", "wb") as f:
                f.write(b"half")
            raise tf.errors.ResourceExhaustedError(
                None, None, _DIR.value + "/.out.npz.tmp-0a1b; No space left on device")
    print("ran", argv[1:])

if __name__ == "__main__":
    cli.run(main)
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "script.py"
    path.write_text(SCRIPT)
    return path


def _run(script, *args):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_value_error_is_one_line_naming_the_value(script):
    proc = _run(script, "--kind=value")
    assert proc.returncode == cli.USER_ERROR_EXIT_CODE
    assert proc.stderr.strip().splitlines() == ["error: --steps must be >= 1. Received: steps=0"]


def test_missing_file_is_one_line(script):
    proc = _run(script, "--kind=missing")
    assert proc.returncode == cli.USER_ERROR_EXIT_CODE
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "/nonexistent/tfkip" in lines[0]


@pytest.mark.parametrize("flag", ["--debug", "--verbosity=1"])
def test_traceback_on_request(script, flag):
    proc = _run(script, "--kind=value", flag)
    assert proc.returncode not in (0, cli.USER_ERROR_EXIT_CODE)
    assert "Traceback" in proc.stderr and "ValueError: --steps must be >= 1." in proc.stderr


def test_bugs_keep_their_traceback(script):
    proc = _run(script, "--kind=bug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "RuntimeError: internal bug" in proc.stderr


def test_absl_semantics_kept(script):
    ok = _run(script, "extra_arg")
    assert ok.returncode == 0 and "ran ['extra_arg']" in ok.stdout
    assert _run(script, "--kind=status").returncode == 3
    bad_flag = _run(script, "--no_such_flag=1")
    assert bad_flag.returncode == 1 and "no_such_flag" in bad_flag.stderr
    help_text = _run(script, "--helpfull").stdout
    assert "--[no]debug" in help_text and "traceback" in help_text
    assert "--[no]force_unlock" in help_text


def test_tensorflow_file_errors_are_user_errors():
    import tensorflow as tf

    types = cli.user_error_types()
    assert tf.errors.NotFoundError in types and tf.errors.UnavailableError in types
    assert tf.errors.InternalError not in types
    error = tf.errors.NotFoundError(None, None, "gs://bucket/x.npz; No such object")
    assert cli.format_error(error) == "error: gs://bucket/x.npz; No such object"
    assert cli.format_error(ValueError("")) == "error: ValueError"


def test_run_time_fault_is_one_line_and_cleans_up(script, tmp_path):
    proc = _run(script, "--kind=enospc", f"--dir={tmp_path}")
    assert proc.returncode == cli.USER_ERROR_EXIT_CODE
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: out of space writing {tmp_path}/out.npz (No space left on device). No "
        f"checkpoint in {tmp_path} yet; a rerun starts from the beginning."
    )
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # temp file and lock gone
    debug = _run(script, "--kind=enospc", f"--dir={tmp_path}", "--debug")
    assert "Traceback" in debug.stderr and "ResourceExhaustedError" in debug.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
