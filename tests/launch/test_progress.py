"""tfkip.progress: rate limiting, elapsed time and the estimate of time left."""

from __future__ import annotations

import pytest

from tfkip.progress import Progress, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _progress(total=100, **kwargs):
    clock, lines = FakeClock(), []
    progress = Progress(total, "KIP", clock=clock, log_fn=lines.append, **kwargs)
    return progress, clock, lines


def test_logs_first_update_then_at_most_once_per_interval_and_at_the_end():
    progress, clock, lines = _progress(min_interval=10.0)
    logged = []
    for step in range(1, 101):
        clock.now += 1.0  # one second per step
        logged.append(progress.update(step) is not None)
    # first update, then every 10 s (steps 11, 21, ..., 91), then the final step 100
    expected = [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]
    assert [i + 1 for i, x in enumerate(logged) if x] == expected
    assert len(lines) == 11
    assert progress.update(100) is None  # the final line is logged once
    assert lines[-1].startswith("KIP: 100/100 steps (100%), 1 min 40 s elapsed, done")


def test_time_left_is_from_the_rate_since_start():
    progress, clock, lines = _progress(total=1000, start=400, min_interval=0.0, unit="steps")
    clock.now += 30.0
    line = progress.update(500)  # 100 steps in 30 s -> 500 left at 3.33 steps/s = 150 s
    assert progress.seconds_left() == pytest.approx(150.0)
    assert "500/1000 steps (50%)" in line
    assert "30 s elapsed" in line and "~2 min 30 s left" in line and "3.33 steps/s" in line


def test_unknown_time_left_before_any_work():
    progress, _, lines = _progress()
    assert progress.seconds_left() is None
    assert "left" not in progress.update(0)


def test_force_logs_even_inside_the_interval():
    progress, clock, lines = _progress(min_interval=60.0)
    progress.update(1)
    clock.now += 1.0
    assert progress.update(2) is None
    assert progress.update(3, force=True) is not None
    assert len(lines) == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"total": 0}, "total must be >= 1. Received: total=0"),
        ({"total": 10, "start": 11}, r"start must be in \[0, total=10\]. Received: start=11"),
        ({"total": 10, "min_interval": -1}, "Received: min_interval=-1"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, match):
    total = kwargs.pop("total")
    with pytest.raises(ValueError, match=match):
        Progress(total, "x", **kwargs)


@pytest.mark.parametrize(
    "seconds, text",
    [(0.04, "0.0 s"), (8.25, "8.2 s"), (12.4, "12 s"), (185, "3 min 05 s"), (7260, "2 h 01 min")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
