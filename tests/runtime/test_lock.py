"""tfkip.runtime.lock: one owner per folder (issue 26), in process and across processes."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from tfkip.runtime import lock as runtime_lock
from tfkip.runtime.lock import LOCK_NAME, LockedError, hold

REPO = pathlib.Path(__file__).resolve().parents[2]


def _write_lock(folder: pathlib.Path, **record) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    path.write_text(json.dumps(record))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_lock_file_holds_the_owner_and_is_released(tmp_path):
    folder = tmp_path / "w"
    with hold(str(folder)):
        record = json.loads((folder / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert {"start_time", "command", "process_start", "cluster"} <= set(record)
    assert not (folder / LOCK_NAME).exists()


def test_released_on_exception(tmp_path):
    with pytest.raises(RuntimeError), hold(str(tmp_path)):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_live_owner_refused_with_its_name(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {
            "host": socket.gethostname(),
            "pid": owner.pid,
            "start_time": "2026-01-01T00:00:00Z",
            "command": "python launch/distill.py",
            "process_start": runtime_lock._process_start(owner.pid),
        }
        path = _write_lock(tmp_path, **record)
        with pytest.raises(LockedError) as info, hold(str(tmp_path)):
            pass
        assert str(info.value) == (
            f"{tmp_path} is in use by pid {owner.pid} on host {socket.gethostname()} since "
            "2026-01-01T00:00:00Z (python launch/distill.py); wait for it to finish, or pass "
            "--force_unlock if that process is gone."
        )
        assert json.loads(path.read_text())["pid"] == owner.pid  # untouched
        with hold(str(tmp_path), force=True):  # --force_unlock
            assert json.loads(path.read_text())["pid"] == os.getpid()
    finally:
        owner.kill()
        owner.wait()


def test_dead_or_recycled_pid_is_taken_over(tmp_path, caplog):
    _write_lock(tmp_path, host=socket.gethostname(), pid=_dead_pid(), start_time="t")
    with hold(str(tmp_path)):
        pass
    # A live pid whose start time differs from the recorded one: the pid was recycled.
    _write_lock(
        tmp_path, host=socket.gethostname(), pid=os.getppid(), start_time="t", process_start=1
    )
    if runtime_lock._process_start(os.getppid()) is not None:
        with hold(str(tmp_path)):
            pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_other_host_is_refused_and_unreadable_old_lock_is_taken_over(tmp_path):
    _write_lock(tmp_path, host="elsewhere", pid=1, start_time="t", command="c")
    with pytest.raises(LockedError, match="pid 1 on host elsewhere"), hold(str(tmp_path)):
        pass
    path = tmp_path / LOCK_NAME
    path.write_text("{not json")
    old = time.time() - 60
    os.utime(path, (old, old))
    with hold(str(tmp_path)):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_file_output_lock_sits_beside_the_file(tmp_path):
    out = tmp_path / "sub" / "eval.json"
    with hold(str(out), is_file=True):
        assert (tmp_path / "sub" / "eval.json.lock").exists()
    assert not (tmp_path / "sub" / "eval.json.lock").exists()


def test_workers_check_and_chief_from_tf_config(tmp_path, monkeypatch):
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    )
    assert not runtime_lock.chief_from_environment("multi_worker_mirrored")
    assert runtime_lock.chief_from_environment("default")
    # The chief of this cluster holds the lock: a worker of the same cluster passes.
    _write_lock(
        tmp_path, host="chiefhost", pid=1, start_time="t", cluster=runtime_lock.cluster_id()
    )
    with hold(str(tmp_path), chief=False):
        pass
    assert (tmp_path / LOCK_NAME).exists()  # a worker never removes it
    _write_lock(tmp_path, host="otherhost", pid=1, start_time="t", cluster=None)
    with pytest.raises(LockedError), hold(str(tmp_path), chief=False):
        pass


def test_sigterm_releases_the_lock(tmp_path):
    script = (
        "import sys, time\n"
        "from tfkip.runtime.lock import hold\n"
        f"with hold({str(tmp_path)!r}):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    assert (tmp_path / LOCK_NAME).exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not (tmp_path / LOCK_NAME).exists()
