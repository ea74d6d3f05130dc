"""Runs that protect themselves (issue 26), as whole ``launch/distill.py`` processes:
one owner per workdir, run-time faults as one ``error:`` line with a resumable workdir,
a corrupt checkpoint skipped, a non-finite step not applied. Each compares with one solo
run (FC1, float64, 40 steps, a checkpoint every 10) bit for bit.
"""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
from train_testlib import DISTILL, REPO, distilled, finish, launch, metrics, run, temp_files

INJECT = REPO / "tests" / "train" / "fault_inject.py"
RUN = [
    "--dataset=mnist_5k",
    "--architecture=fc",
    "--depth=1",
    "--target_batch_size=100",
    "--steps=40",
    "--steps_per_loop=10",
    "--checkpoint_every=10",
    "--eval_every=20",
    "--eval_tile=250",
    "--dtype=float64",
    "--seed=0",
]


def _error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("error:")]


def _assert_same_set(workdir, reference) -> None:
    got, want = distilled(workdir), distilled(reference)
    assert np.array_equal(got["images"], want["images"])
    assert np.array_equal(got["labels"], want["labels"])
    assert [r["step"] for r in metrics(workdir)] == [r["step"] for r in metrics(reference)]


def _latest(workdir) -> str:
    state = (workdir / "checkpoints" / "checkpoint").read_text()
    return state.splitlines()[0].split('"')[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("solo") / "run"
    code, log = run(DISTILL, [*RUN, f"--workdir={workdir}"], workdir.parent / "solo.log")
    assert code == 0, log[-3000:]
    assert not (workdir / "tfkip.lock").exists()  # released at exit
    # Quiet logs: no C++ start-up lines, no per-checkpoint "Sharding callback" line.
    for noise in ("absl::InitializeLog", "cpu_feature_guard", "Sharding callback duration"):
        assert noise not in log, log[-3000:]
    return workdir


def test_second_run_on_a_workdir_exits_2_naming_the_owner(reference, tmp_path):
    workdir = tmp_path / "run"
    args = [*RUN, f"--workdir={workdir}"]
    first = launch(DISTILL, args, tmp_path / "first.log")
    lock = workdir / "tfkip.lock"
    deadline = time.monotonic() + 120
    while not lock.exists():
        assert first.poll() is None, finish(first)[-3000:]
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # hold the first run mid-way, lock taken
    try:
        owner = json.loads(lock.read_text())
        assert owner["pid"] == first.pid and "distill.py" in owner["command"]
        code, log = run(DISTILL, args, tmp_path / "second.log")
    finally:
        first.send_signal(signal.SIGCONT)
    first_log = finish(first)
    assert code == 2, log[-3000:]
    assert _error_lines(log) == [
        f"error: {workdir} is in use by pid {first.pid} on host {owner['host']} since "
        f"{owner['start_time']} ({owner['command']}); wait for it to finish, or pass "
        f"--force_unlock if that process is gone."
    ], log[-3000:]
    assert "Traceback" not in log
    assert first.returncode == 0, first_log[-3000:]
    _assert_same_set(workdir, reference)
    assert not lock.exists()


def test_stale_lock_of_a_dead_process_is_taken_over(reference, tmp_path):
    import socket
    import subprocess

    workdir = tmp_path / "run"
    workdir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {"host": socket.gethostname(), "pid": dead.pid, "start_time": "then", "command": "x"}
    (workdir / "tfkip.lock").write_text(json.dumps(stale))
    code, log = run(DISTILL, [*RUN, f"--workdir={workdir}"], tmp_path / "run.log")
    assert code == 0, log[-3000:]
    assert f"pid {dead.pid} on this host, which held it since then, is gone" in log
    _assert_same_set(workdir, reference)
    assert not (workdir / "tfkip.lock").exists()


@pytest.mark.parametrize(
    "inject, what",
    [
        ({"INJECT_CHECKPOINT_ENOSPC": "30"}, "checkpoints/ckpt-30"),
        ({"INJECT_DISTILLED_ENOSPC": "2"}, "distilled.npz"),
    ],
)
def test_disk_full_is_one_line_and_the_rerun_resumes_to_the_solo_result(
    reference, tmp_path, inject, what
):
    workdir = tmp_path / "run"
    args = [str(DISTILL), *RUN, f"--workdir={workdir}"]
    code, log = run(INJECT, args, tmp_path / "full.log", **inject)
    assert code == 2, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    last = "20"  # checkpoint 30 failed / distilled.npz #2 is written after checkpoint 20
    ckpt = workdir / "checkpoints" / f"ckpt-{last}"
    assert _error_lines(log) == [
        f"error: out of space writing {workdir / what} (No space left on device). The last "
        f"good checkpoint is {ckpt} (step {last}); a rerun of the same command resumes "
        f"from it."
    ], log[-3000:]
    assert temp_files(workdir) == []
    assert not (workdir / "tfkip.lock").exists()

    code, log = run(DISTILL, args[1:], tmp_path / "rerun.log")
    assert code == 0, log[-3000:]
    assert f"Resumed from {ckpt} at step {last}" in log
    _assert_same_set(workdir, reference)


def test_corrupt_last_checkpoint_falls_back_to_the_one_before(reference, tmp_path):
    workdir = tmp_path / "run"
    args = [*RUN, "--steps=30", f"--workdir={workdir}"]
    code, log = run(DISTILL, args, tmp_path / "first.log")
    assert code == 0, log[-3000:]
    data = workdir / "checkpoints" / "ckpt-30.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated

    code, log = run(DISTILL, [*RUN, f"--workdir={workdir}"], tmp_path / "rerun.log")
    assert code == 0, log[-3000:]
    warnings = [line for line in log.splitlines() if "ckpt-30 cannot be read" in line]
    assert len(warnings) == 1, log[-3000:]
    assert f"Resumed from {workdir / 'checkpoints' / 'ckpt-20'} at step 20" in log
    _assert_same_set(workdir, reference)
    # The manager went on keeping 3 checkpoints: none of the old ones is left orphaned.
    index_files = sorted(p.name for p in (workdir / "checkpoints").glob("*.index"))
    assert index_files == ["ckpt-20.index", "ckpt-30.index", "ckpt-40.index"]


def test_all_checkpoints_corrupt_is_one_line(tmp_path):
    workdir = tmp_path / "run"
    args = [*RUN, "--steps=10", f"--workdir={workdir}"]
    code, log = run(DISTILL, args, tmp_path / "first.log")
    assert code == 0, log[-3000:]
    (workdir / "checkpoints" / "ckpt-10.index").write_bytes(b"garbage")
    code, log = run(DISTILL, [*RUN, f"--workdir={workdir}"], tmp_path / "rerun.log")
    assert code == 2 and "Traceback" not in log, log[-3000:]
    (line,) = _error_lines(log)
    assert line.startswith(f"error: No checkpoint in {workdir / 'checkpoints'} can be read")


def test_nan_step_stops_the_run_with_the_previous_support_intact(reference, tmp_path):
    workdir = tmp_path / "run"
    args = [str(DISTILL), *RUN, f"--workdir={workdir}"]
    code, log = run(INJECT, args, tmp_path / "nan.log", INJECT_NAN_STEP="25")
    assert code == 2 and "Traceback" not in log, log[-3000:]
    ckpt = workdir / "checkpoints" / "ckpt-20"
    assert _error_lines(log) == [
        "error: KIP step 25 -> 26 made the loss or the support non-finite, so it was not "
        "applied and the run stopped without writing it. Try a smaller --learning_rate, a "
        "larger --reg, --dtype=float64, or --on_nonfinite=lower_lr. The last good "
        f"checkpoint is {ckpt} (step 20); a rerun of the same command resumes from it."
    ], log[-3000:]
    assert _latest(workdir) == "ckpt-20"
    out = distilled(workdir)  # written at step 20, finite
    assert np.all(np.isfinite(out["images"])) and np.all(np.isfinite(out["labels"]))
    assert [r["step"] for r in metrics(workdir)] == [0, 20]

    code, log = run(DISTILL, args[1:], tmp_path / "rerun.log")
    assert code == 0, log[-3000:]
    _assert_same_set(workdir, reference)


def test_nan_step_with_lower_lr_goes_on(tmp_path):
    workdir = tmp_path / "run"
    args = [str(DISTILL), *RUN, "--on_nonfinite=lower_lr", f"--workdir={workdir}"]
    code, log = run(
        INJECT, args, tmp_path / "nan.log", INJECT_NAN_STEP="25", INJECT_NAN_UNTIL_LR_LOWERED="1"
    )
    assert code == 0, log[-3000:]
    assert "KIP step 25 -> 26 made the loss or support non-finite; not applied" in log
    assert "Learning rate lowered from 0.04 to 0.02" in log
    out = distilled(workdir)
    assert np.all(np.isfinite(out["images"]))
    assert [r["step"] for r in metrics(workdir)] == [0, 20, 40]
