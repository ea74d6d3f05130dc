"""Handing freed memory back to the operating system (`tfkip.runtime.memory`): that
``malloc_trim`` really returns a fragmented heap's free pages, that `trimming` trims while
its block runs and stops after it, that `KIPTrainer` trims around first calls only, and
the no-op where the C library has no ``malloc_trim``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time

import keras
import numpy as np
import pytest
from train_testlib import fc1_trainer

from tfkip import architectures
from tfkip.data import prepare
from tfkip.kip import KIPAdam, KIPModel
from tfkip.runtime import memory

glibc = pytest.mark.skipif(
    memory._malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)"
)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc
def test_release_returns_the_free_pages_of_a_fragmented_heap():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # 160 MB in 4 KiB blocks, touched; then free all but every 64th: the heap cannot
    # shrink (live blocks all over it), so the freed pages stay resident until trimmed.
    blocks = [libc.malloc(4096) for _ in range(40_000)]
    for b in blocks:
        ctypes.memset(b, 1, 4096)
    kept = blocks[::64]
    for i, b in enumerate(blocks):
        if i % 64:
            libc.free(b)
    try:
        before = rss_bytes()
        assert memory.release_free_memory()
        returned = before - rss_bytes()
        assert returned > 100 * 2**20, returned
    finally:
        for b in kept:
            libc.free(b)


def fake_trim(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    return calls


def test_trimming_trims_while_the_block_runs_and_stops_after(monkeypatch):
    calls = fake_trim(monkeypatch)
    with memory.trimming(period=0.02):
        time.sleep(0.3)
        during = len(calls)
        assert any(t.name == "tfkip-malloc-trim" for t in threading.enumerate())
    assert during >= 5 and all(pad == 0 for pad in calls)
    assert len(calls) in (during + 1, during + 2)  # a last tick, then the final trim
    after = len(calls)
    time.sleep(0.1)
    assert len(calls) == after
    assert not any(t.name == "tfkip-malloc-trim" for t in threading.enumerate())


def test_trimming_trims_at_the_end_even_when_the_block_raises(monkeypatch):
    calls = fake_trim(monkeypatch)
    with pytest.raises(RuntimeError, match="boom"):
        with memory.trimming(period=10.0):
            raise RuntimeError("boom")
    assert calls == [0]


def test_without_malloc_trim_everything_is_a_no_op(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_free_memory() is False
    threads = threading.active_count()
    with memory.trimming(period=0.01):
        assert threading.active_count() == threads
        time.sleep(0.05)


@pytest.mark.parametrize("period", [0, -1.0, float("nan")])
def test_bad_period(period):
    message = f"period must be a positive.*Received: {period}"
    with pytest.raises(ValueError, match=message):
        with memory.trimming(period=period):
            pass
    with pytest.raises(ValueError, match=message):
        memory.FirstCalls(period=period)
    with pytest.raises(ValueError, match=message):
        memory.ReleaseCompileMemory(period=period)


def test_first_calls_trim_once_per_name(monkeypatch):
    calls = fake_trim(monkeypatch)
    first_calls = memory.FirstCalls(period=10.0)
    with first_calls("train"):
        pass
    with first_calls("train"):
        pass
    assert calls == [0]
    with first_calls("evaluate"):
        pass
    assert calls == [0, 0]
    off = memory.FirstCalls(enabled=False)
    with off("train"):
        pass
    assert calls == [0, 0]


def test_first_call_that_raises_trims_again_next_time(monkeypatch):
    calls = fake_trim(monkeypatch)
    first_calls = memory.FirstCalls(period=10.0)
    with pytest.raises(RuntimeError):
        with first_calls("train"):
            raise RuntimeError
    with first_calls("train"):
        pass
    assert calls == [0, 0]


def record_trimming(monkeypatch) -> list:
    """Replaces `memory.trimming` by a recorder of its blocks: ``("start", period)`` when
    one begins, ``"end"`` when it ends."""
    blocks = []

    @contextlib.contextmanager
    def recording(period):
        blocks.append(("start", period))
        yield
        blocks.append("end")

    monkeypatch.setattr(memory, "trimming", recording)
    return blocks


def test_trainer_trims_around_its_compiling_calls_only(monkeypatch):
    data = prepare("mnist_5k")
    trainer = fc1_trainer(data)
    blocks = record_trimming(monkeypatch)
    block = [("start", memory.DEFAULT_PERIOD), "end"]
    trainer.train(0, 1)
    trainer.train(1, 2)
    assert blocks == block  # the compiling call only
    trainer.evaluate(data.x_test[:50], data.y_test[:50], tile=20)  # 3 tiles, 1 compile
    assert blocks == block * 2
    assert np.isfinite(trainer.train(3, 1)[0])
    assert blocks == block * 2


def test_keras_callback_trims_during_the_first_batch_of_each_loop(monkeypatch):
    blocks = record_trimming(monkeypatch)
    start = ("start", memory.DEFAULT_PERIOD)
    rng = np.random.default_rng(0)
    model = KIPModel(
        architectures.get("fc", 1), rng.standard_normal((4, 8)), np.eye(2)[[0, 0, 1, 1]] - 0.5
    )
    model.compile(optimizer=KIPAdam(0.04))
    xt, yt = rng.standard_normal((12, 8)), np.eye(2)[[0, 1] * 6] - 0.5
    callback = memory.ReleaseCompileMemory()
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append((batch, list(blocks)))

    model.fit(xt, yt, batch_size=6, epochs=2, verbose=0, callbacks=[callback, Watch()])
    # Trimming from the start of fit until the end of its first batch only.
    assert seen[0] == (0, [start])
    assert all(state == [start, "end"] for _, state in seen[1:]) and len(seen) == 4
    model.evaluate(xt, yt, batch_size=6, verbose=0, callbacks=[callback])
    assert blocks == [start, "end"] * 2
