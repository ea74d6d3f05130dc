"""One owner per output folder: a lock file taken atomically at start, released at exit.

A run that writes into a folder (distill / label_solve / train_finite ``--workdir``,
evaluate's and export's ``--output``) first creates the lock file :data:`LOCK_NAME` in it
(for an output that is a single file: ``<file>.lock`` beside it). The file is JSON::

    {"host": "vm-1", "pid": 4242, "start_time": "2026-12-06T08:00:00Z",
     "process_start": 123456, "command": "python launch/distill.py --workdir=runs/q",
     "cluster": null, "token": "81ce014f..."}

``process_start`` is the owner's start time in clock ticks since boot (Linux
``/proc/PID/stat``; None elsewhere), so that a recycled pid is not mistaken for the owner;
``cluster`` identifies a multi-worker cluster (a hash of ``TF_CONFIG``'s cluster spec);
``token`` (random) lets the owner delete only its own lock.

Contract:

* Taking the lock is atomic on local paths: ``os.open(O_CREAT | O_EXCL)``. If the file
  exists, the owner is alive (or on another host) and ``force`` is False,
  `LockedError` (a ValueError: one ``error:`` line, exit status 2) names the owner.
* A lock whose owner is gone -- same host, and its pid is not running or runs another
  process -- is taken over with a warning. So is an unreadable lock file older than
  :data:`PARTIAL_GRACE_SECONDS` (a process killed between creating and filling it).
* ``force=True`` (``--force_unlock``) takes over any lock, with a warning.
* The lock is released (the file deleted, if it still holds this process's record) when
  the ``with`` block exits, normally or by an exception, ``SystemExit`` and Ctrl-C
  included; SIGTERM and SIGHUP, whose default action would end the process without that,
  raise ``SystemExit(128 + signal)`` while the lock is held. SIGKILL cannot be caught:
  the next run takes the stale lock over.
* Multi-worker runs: only the chief takes the lock (``chief=True``); the other workers
  (``chief=False``) only check that the folder is not owned by a live process of another
  cluster.

Limitation: on non-local paths (``gs://``, through `tf.io.gfile`) there is no exclusive
create; the lock is written only if absent and read back to confirm, so two runs starting
within the same second may both pass. A pid on another host cannot be checked either: a
lock left there by a crashed machine needs ``--force_unlock``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from absl import logging

LOCK_NAME = "tfkip.lock"
PARTIAL_GRACE_SECONDS = 10.0
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class LockedError(ValueError):
    """The folder is in use by another live process."""


def lock_path(path: str, is_file: bool = False) -> str:
    """The lock file of folder ``path`` (``path/tfkip.lock``) or of file ``path``
    (``path.lock``)."""
    if is_file:
        return f"{path}.lock"
    return path.rstrip("/") + "/" + LOCK_NAME if "://" in path else os.path.join(path, LOCK_NAME)


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


def cluster_id() -> str | None:
    """A short hash of ``TF_CONFIG``'s cluster spec (None without one)."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster")
    except ValueError:
        return None
    if not cluster:
        return None
    return hashlib.sha256(json.dumps(cluster, sort_keys=True).encode()).hexdigest()[:16]


def own_record() -> dict[str, Any]:
    """What this process writes into a lock file."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "process_start": _process_start(os.getpid()),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "cluster": cluster_id(),
        "token": uuid.uuid4().hex,
    }


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """True/False if ``owner`` (a lock record) runs on this host; None if it cannot be told
    (another host)."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    recorded, current = owner.get("process_start"), _process_start(pid)
    if recorded is not None and current is not None and recorded != current:
        return False  # the pid was recycled
    return True


def describe_owner(folder: str, owner: dict[str, Any]) -> str:
    return (
        f"{folder} is in use by pid {owner.get('pid')} on host {owner.get('host')} since "
        f"{owner.get('start_time')} ({owner.get('command')}); wait for it to finish, or pass "
        f"--force_unlock if that process is gone."
    )


class RunLock:
    """The lock of one folder; use :func:`hold`."""

    def __init__(self, folder: str, is_file: bool = False):
        self.folder = folder
        self.path = lock_path(folder, is_file)
        self.record: dict[str, Any] | None = None
        self._previous_handlers: dict[int, Any] = {}

    # -------------------------------------------------------------- reading
    def read(self) -> tuple[dict[str, Any] | None, bool]:
        """``(record or None, exists)``: the lock file's record (None if unreadable)."""
        import tensorflow as tf

        try:
            if _is_local(self.path):
                with open(self.path.removeprefix("file://"), "rb") as f:
                    data = f.read()
            else:
                with tf.io.gfile.GFile(self.path, "rb") as f:
                    data = f.read()
        except (FileNotFoundError, tf.errors.NotFoundError):
            return None, False
        try:
            record = json.loads(data.decode("utf-8"))
            return (record if isinstance(record, dict) else None), True
        except (ValueError, UnicodeDecodeError):
            return None, True

    def _age(self) -> float:
        try:
            return time.time() - os.path.getmtime(self.path.removeprefix("file://"))
        except OSError:
            return 0.0

    # ------------------------------------------------------------- taking it
    def _create(self, record: dict[str, Any]) -> bool:
        data = json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"
        if _is_local(self.path):
            path = self.path.removeprefix("file://")
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            return True
        import tensorflow as tf

        if tf.io.gfile.exists(self.path):  # not atomic: see the module docstring
            return False
        with tf.io.gfile.GFile(self.path, "wb") as f:
            f.write(data)
        got, _ = self.read()
        return bool(got) and got.get("token") == record["token"]

    def _remove(self) -> None:
        import tensorflow as tf

        with contextlib.suppress(OSError, tf.errors.OpError):
            if _is_local(self.path):
                os.remove(self.path.removeprefix("file://"))
            else:
                tf.io.gfile.remove(self.path)

    def acquire(self, force: bool = False, attempts: int = 5) -> None:
        """Takes the lock (see the module docstring); `LockedError` if it is held."""
        record = own_record()
        for _ in range(attempts):
            if self._create(record):
                self.record = record
                self._install_signal_handlers()
                return
            owner, exists = self.read()
            if not exists:
                continue  # released meanwhile: try again
            if owner is None:
                if self._age() < PARTIAL_GRACE_SECONDS and not force:
                    time.sleep(0.2)  # another process is writing it
                    continue
                logging.warning("Taking over %s: its content is unreadable.", self.path)
            elif force:
                logging.warning(
                    "--force_unlock: taking over %s from pid %s on host %s.",
                    self.path,
                    owner.get("pid"),
                    owner.get("host"),
                )
            elif owner_alive(owner) is False:
                logging.warning(
                    "Taking over %s: pid %s on this host, which held it since %s, is gone.",
                    self.path,
                    owner.get("pid"),
                    owner.get("start_time"),
                )
            else:
                raise LockedError(describe_owner(self.folder, owner))
            self._remove()
        owner, _ = self.read()
        raise LockedError(describe_owner(self.folder, owner or {}))

    def check(self) -> None:
        """For non-chief workers: `LockedError` if a live process of another cluster owns
        the folder."""
        owner, exists = self.read()
        if not exists or owner is None:
            return
        if owner.get("cluster") is not None and owner.get("cluster") == cluster_id():
            return
        if owner_alive(owner) is False:
            return
        raise LockedError(describe_owner(self.folder, owner))

    def release(self) -> None:
        """Deletes the lock file if it still holds this process's record."""
        self._restore_signal_handlers()
        if self.record is None:
            return
        owner, _ = self.read()
        if owner is not None and owner.get("token") == self.record["token"]:
            self._remove()
        self.record = None

    # ----------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _HANDLED_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                self._previous_handlers[signum] = signal.signal(signum, _exit_on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, previous in self._previous_handlers.items():
            if signal.getsignal(signum) is _exit_on_signal:
                signal.signal(signum, previous)
        self._previous_handlers.clear()


def _exit_on_signal(signum, frame) -> None:
    del frame
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def hold(
    folder: str, force: bool = False, chief: bool = True, is_file: bool = False
) -> Iterator[RunLock]:
    """Owns ``folder`` for the ``with`` block (creating it; for ``is_file``, its parent).

    ``chief=False`` (a non-chief worker) only checks the lock, see `RunLock.check`.

    Raises:
      LockedError: the folder is in use (its message names the owner and --force_unlock).
    """
    import tensorflow as tf

    parent = os.path.dirname(folder) if is_file else folder
    if parent and not tf.io.gfile.exists(parent):
        tf.io.gfile.makedirs(parent)
    lock = RunLock(folder, is_file)
    if not chief:
        lock.check()
        yield lock
        return
    lock.acquire(force=force)
    try:
        yield lock
    finally:
        lock.release()


def chief_from_environment(strategy: str | None) -> bool:
    """Whether this process is the chief, from ``TF_CONFIG`` (as `is_chief` decides for a
    strategy, without building it): always True unless ``strategy`` is
    ``multi_worker_mirrored``."""
    if strategy != "multi_worker_mirrored":
        return True
    try:
        task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    except ValueError:
        return True
    kind, index = task.get("type"), task.get("index", 0)
    return kind in (None, "chief") or (kind == "worker" and int(index) == 0)
