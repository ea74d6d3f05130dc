"""Handing the memory that XLA's compiler frees back to the operating system.

The first call of a jit-compiled function compiles it (TensorFlow graph -> HLO ->
optimised HLO -> machine code) and then runs it, inside the same op. Compilation frees
nearly everything it allocates, but glibc's malloc keeps freed pages in its arenas
(they are fragmented, so it cannot shrink them), and the program's buffers are then
mapped afresh: the process peaks at *compiler garbage + buffers*; ``malloc_trim`` hands
the garbage back.

`trimming()` does so while a block runs: a daemon thread calls ``malloc_trim(0)`` every
``period`` seconds, and once more when the block ends. `KIPTrainer` wraps each compiled
function's first call in it (`FirstCalls`), so the garbage is returned while the compiler
runs and before the buffers fill; later calls run untouched (trimming then would only
cost page faults). For Keras' own loops, `ReleaseCompileMemory` does the same around the
first batch of ``fit``, ``evaluate`` and ``predict``. Where the C library has no
``malloc_trim`` (not glibc) every function here is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Iterator

import keras

DEFAULT_PERIOD = 0.1
"""Seconds between two trims during a compiling call (a trim takes milliseconds)."""


@functools.cache
def _malloc_trim():
    """glibc's ``int malloc_trim(size_t pad)``, or None where the C library lacks it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def _check_period(period: float) -> float:
    if not period > 0:
        raise ValueError(f"period must be a positive number of seconds. Received: {period!r}")
    return period


def release_free_memory() -> bool:
    """Returns malloc's free pages to the operating system (``malloc_trim(0)``).

    Returns True if the C library has ``malloc_trim`` (whether or not it found pages to
    return), False where it is a no-op.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@contextlib.contextmanager
def trimming(period: float = DEFAULT_PERIOD) -> Iterator[None]:
    """Calls `release_free_memory` every ``period`` seconds while the block runs, and
    once after it (also if it raises).

    >>> with trimming():
    ...     loss = trainer.train(0, 1)  # compiles, then runs  # doctest: +SKIP
    """
    _check_period(period)
    if _malloc_trim() is None:
        yield
        return
    done = threading.Event()

    def trim_until_done():
        while not done.wait(period):
            release_free_memory()

    thread = threading.Thread(target=trim_until_done, name="tfkip-malloc-trim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        release_free_memory()


class FirstCalls:
    """`trimming()` around the first call of each named function, nothing around later ones.

    >>> first_calls = FirstCalls()
    >>> with first_calls("train"):  # compiles: trims while it runs
    ...     pass
    >>> with first_calls("train"):  # compiled: runs untouched
    ...     pass
    """

    def __init__(self, enabled: bool = True, period: float = DEFAULT_PERIOD):
        self.enabled = enabled
        self.period = _check_period(period)
        self._seen: set[str] = set()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.enabled or name in self._seen:
            yield
            return
        with trimming(self.period):
            yield
        self._seen.add(name)


class ReleaseCompileMemory(keras.callbacks.Callback):
    """A Keras callback: `trimming()` during the first batch of each ``fit``, ``evaluate``
    and ``predict`` call, the one that compiles Keras' step function.

    >>> model.fit(x, y, callbacks=[ReleaseCompileMemory()])  # doctest: +SKIP
    """

    def __init__(self, period: float = DEFAULT_PERIOD):
        super().__init__()
        self.period = _check_period(period)
        self._block = None

    def _start(self, logs=None):
        if self._block is None:
            self._block = trimming(self.period)
            self._block.__enter__()

    def _stop(self, batch=None, logs=None):
        if self._block is not None:
            block, self._block = self._block, None
            block.__exit__(None, None, None)

    on_train_begin = on_test_begin = on_predict_begin = _start
    on_train_batch_end = on_test_batch_end = on_predict_batch_end = _stop
    on_train_end = on_test_end = on_predict_end = _stop
