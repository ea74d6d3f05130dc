"""tfkip.runtime.faults: run-time faults classified into one line that names the path and the last
good checkpoint; temporary files removed (issue 26). The whole-run versions (disk full,
corrupt checkpoint, NaN) are in tests/train/test_reliability.py."""

from __future__ import annotations

import errno

import pytest
import tensorflow as tf

from tfkip.runtime import faults


@pytest.fixture
def workdir(tmp_path):
    """A workdir with checkpoints 10 and 20 and the leftovers of an interrupted save."""
    ckpt = tf.train.Checkpoint(v=tf.Variable([1.0]))
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "checkpoints"), max_to_keep=3)
    manager.save(checkpoint_number=10)
    manager.save(checkpoint_number=20)
    (tmp_path / "checkpoints" / "ckpt-30_temp").mkdir()
    (tmp_path / "checkpoints" / "ckpt-30_temp" / "part-0.tempstate1").write_bytes(b"x")
    (tmp_path / ".distilled.npz.tmp-0123abcd").write_bytes(b"x")
    return tmp_path


def _describe(error, folder, checkpoints="checkpoints"):
    with pytest.raises(type(error)), faults.watching(str(folder), checkpoints):
        raise error
    return faults.describe(error)


def _safe(folder, step=20):
    ckpt = folder / "checkpoints" / f"ckpt-{step}"
    return (
        f" The last good checkpoint is {ckpt} (step {step}); a rerun of the same command "
        "resumes from it."
    )


def test_disk_full_in_a_checkpoint_names_it_and_removes_temporaries(workdir):
    temp = workdir / "checkpoints" / "ckpt-30_temp" / "part-00000-of-00001.data.tempstate9"
    error = tf.errors.ResourceExhaustedError(
        None, None, f"{{{{function_node __wrapped__SaveV2}}}} {temp}; No space left on device"
    )
    message = _describe(error, workdir)
    assert message == (
        f"out of space writing {workdir / 'checkpoints' / 'ckpt-30'} (No space left on "
        "device)." + _safe(workdir)
    )
    names = sorted(p.name for p in workdir.rglob("*"))
    assert not [n for n in names if "_temp" in n or ".tmp-" in n or "tempstate" in n], names
    assert "ckpt-20.index" in names  # finished checkpoints untouched


def test_os_level_faults(workdir):
    npz = workdir / ".distilled.npz.tmp-0a1b"
    assert _describe(OSError(errno.ENOSPC, "No space left on device", str(npz)), workdir) == (
        f"out of space writing {workdir / 'distilled.npz'} (No space left on device)."
        + _safe(workdir)
    )
    ro = tf.errors.PermissionDeniedError(None, None, f"{workdir}/x; Read-only file system")
    assert _describe(ro, workdir) == (
        f"{workdir}/x is on a read-only file system (Read-only file system)." + _safe(workdir)
    )
    denied = PermissionError(errno.EACCES, "Permission denied", str(workdir / "metrics.jsonl"))
    assert _describe(denied, workdir) == (
        f"permission denied on {workdir / 'metrics.jsonl'} (Permission denied); restore write "
        "access to it." + _safe(workdir)
    )


def test_vanished_workdir(tmp_path):
    gone = tmp_path / "gone"
    error = tf.errors.NotFoundError(None, None, f"{gone}/metrics.jsonl; No such file or directory")
    message = _describe(error, gone)
    assert message.startswith(
        f"{gone} vanished while the run was writing {gone}/metrics.jsonl (No such file or "
        "directory)."
    )
    assert message.endswith(f"No checkpoint in {gone} yet; a rerun starts from the beginning.")
    # The same error while the folder exists is a plain missing file (a user error).
    tmp_path.joinpath("here").mkdir()
    assert _describe(error, tmp_path / "here") is None


def test_out_of_memory_suggests_smaller_tiles(workdir):
    error = tf.errors.ResourceExhaustedError(
        None, None, "Out of memory while trying to allocate 17179869184 bytes. [Op:__inference]"
    )
    message = _describe(error, workdir)
    assert message.startswith("out of memory (Out of memory while trying to allocate")
    assert "--kernel_memory_mib" in message and "--target_batch_size" in message
    assert message.endswith(_safe(workdir))


def test_other_errors_are_not_faults(workdir):
    assert _describe(RuntimeError("internal bug"), workdir) is None
    assert _describe(ValueError("Received: steps=0"), workdir) is None
    assert _describe(tf.errors.InternalError(None, None, "bug"), workdir) is None


def test_outputs_without_checkpoints_say_nothing_about_them(tmp_path):
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.tfrecord"))
    assert _describe(error, tmp_path, checkpoints=None) == (
        f"out of space writing {tmp_path / 'out.tfrecord'} (No space left on device)."
    )


def test_oom_detail_and_failed_download():
    error = tf.errors.ResourceExhaustedError(
        None,
        None,
        "Graph execution error:\n\nDetected at node x defined at:\n  File a\n\n"
        "Out of memory while trying to allocate 49172480000 bytes.\n\t [[{{node P}}]]",
    )
    assert faults.describe(error).startswith(
        "out of memory (Out of memory while trying to allocate 49172480000 bytes). Lower"
    )
    message = faults.describe(ConnectionError("Max retries exceeded with url: /t10k.gz"))
    assert message.startswith("could not download the data (ConnectionError: Max retries")
    assert "--data_dir" in message
