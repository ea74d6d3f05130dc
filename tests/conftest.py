"""Test-session configuration: the order in which test files start.

The suite runs on two pytest-xdist workers with ``--dist loadfile`` (docs/development.md):
each file runs whole on one worker, and files are handed out in collection order. A few
files take minutes (they train in subprocesses, or run 500-step distillations); if one of
them were handed out last, one worker would run it alone while the other sat idle. So
they are collected first, longest first, and the rest keep pytest's order. Without
xdist this only changes the order; every test still runs.
"""

from __future__ import annotations

from pathlib import Path

from tfkip.runtime import configure_xla

# The suite compiles its programs as the launchers do (`import tfkip` alone sets nothing).
configure_xla()

# Measured longest files (summed test time on two workers, 2 cores), longest first.
LONGEST_FIRST = (
    "train/test_mirrored.py",
    "train/test_loop.py",
    "train/test_processes.py",
    "train/test_reliability.py",
    "kernels/test_gradients.py",
    "test_evaluate.py",
    "transfer/test_recipes.py",
    "transfer/test_train.py",
    "kip/test_mnist.py",
)


def _start_rank(item) -> int:
    relative = item.path.relative_to(Path(__file__).parent).as_posix()
    return LONGEST_FIRST.index(relative) if relative in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_start_rank)  # stable: each file's own order is kept
