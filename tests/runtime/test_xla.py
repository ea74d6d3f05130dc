"""tfkip's default XLA flags: added at import, never over the user's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tfkip.runtime.xla import DEFAULT_XLA_FLAGS, OPT_OUT, configure_xla


def test_defaults_are_appended_to_other_flags():
    env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    added = configure_xla(env)
    assert added == ["--xla_cpu_use_fusion_emitters=false"]
    assert env["XLA_FLAGS"] == (
        "--xla_cpu_enable_fast_math=false --xla_cpu_use_fusion_emitters=false"
    )
    assert configure_xla(env) == []  # idempotent


def test_defaults_without_any_xla_flags():
    env = {}
    configure_xla(env)
    assert env["XLA_FLAGS"] == " ".join(f"--{k}={v}" for k, v in DEFAULT_XLA_FLAGS.items())


def test_the_users_own_setting_wins():
    for given in ("--xla_cpu_use_fusion_emitters=true", "xla_cpu_use_fusion_emitters=true"):
        env = {"XLA_FLAGS": given}
        assert configure_xla(env) == []
        assert env["XLA_FLAGS"] == given


def test_opt_out_leaves_xla_flags_alone():
    env = {OPT_OUT: "1"}
    assert configure_xla(env) == []
    assert "XLA_FLAGS" not in env
    env = {OPT_OUT: "0"}
    assert configure_xla(env) == ["--xla_cpu_use_fusion_emitters=false"]


def test_importing_tfkip_changes_no_environment_variable_and_no_flag():
    """``import tfkip`` and every subpackage leave ``os.environ`` and absl's flags as its
    dependencies left them (TensorFlow and absl.app set some of their own at import);
    `configure_xla`, which the launchers call, is what sets ``XLA_FLAGS``."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", OPT_OUT)}
    code = (
        "import os, json\n"
        "from absl import app, flags\n"
        "import numpy, tensorflow, keras, tensorflow_datasets\n"
        "before, names = dict(os.environ), set(flags.FLAGS)\n"
        "import tfkip, tfkip.kernels, tfkip.kip, tfkip.data, tfkip.train, tfkip.finite\n"
        "import tfkip.sets, tfkip.viz, tfkip.transfer, tfkip.evaluate, tfkip.runtime.cli\n"
        "import tfkip.runtime.progress, tfkip.runtime.memory\n"
        "changed = sorted(k for k in set(before) | set(os.environ)\n"
        "                 if before.get(k) != os.environ.get(k))\n"
        "print(json.dumps([changed, sorted(set(flags.FLAGS) - names)]))\n"
        "tfkip.runtime.configure_xla()\n"
        "print(os.environ['XLA_FLAGS'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0]) == [[], []], lines[0]
    assert lines[1] == "--xla_cpu_use_fusion_emitters=false"
