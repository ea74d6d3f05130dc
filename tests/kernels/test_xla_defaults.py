"""tfkip's default XLA flags: added at import, never over the user's own."""

from __future__ import annotations

import os
import subprocess
import sys

from tfkip.xla_defaults import DEFAULT_XLA_FLAGS, OPT_OUT, apply_default_xla_flags


def test_defaults_are_appended_to_other_flags():
    env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    added = apply_default_xla_flags(env)
    assert added == ["--xla_cpu_use_fusion_emitters=false"]
    assert env["XLA_FLAGS"] == (
        "--xla_cpu_enable_fast_math=false --xla_cpu_use_fusion_emitters=false"
    )
    assert apply_default_xla_flags(env) == []  # idempotent


def test_defaults_without_any_xla_flags():
    env = {}
    apply_default_xla_flags(env)
    assert env["XLA_FLAGS"] == " ".join(f"--{k}={v}" for k, v in DEFAULT_XLA_FLAGS.items())


def test_the_users_own_setting_wins():
    for given in ("--xla_cpu_use_fusion_emitters=true", "xla_cpu_use_fusion_emitters=true"):
        env = {"XLA_FLAGS": given}
        assert apply_default_xla_flags(env) == []
        assert env["XLA_FLAGS"] == given


def test_opt_out_leaves_xla_flags_alone():
    env = {OPT_OUT: "1"}
    assert apply_default_xla_flags(env) == []
    assert "XLA_FLAGS" not in env
    env = {OPT_OUT: "0"}
    assert apply_default_xla_flags(env) == ["--xla_cpu_use_fusion_emitters=false"]


def test_import_tfkip_sets_them_in_the_process():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", OPT_OUT)}
    out = subprocess.run(
        [sys.executable, "-c", "import os, tfkip; print(os.environ['XLA_FLAGS'])"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "--xla_cpu_use_fusion_emitters=false"
