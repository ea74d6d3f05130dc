"""tfkip.runtime.progress: rate limiting, elapsed time and the estimate of time left."""

from __future__ import annotations

import pytest

from tfkip.runtime.progress import Progress, format_duration, format_rate


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


def test_quiet_for_keeps_short_jobs_silent():
    progress, clock, lines = _progress(total=10, quiet_for=5.0, min_interval=0.0)
    clock.now += 1.0
    assert progress.update(10) is None  # finished within 5 s: nothing logged
    slow, clock, lines = _progress(total=10, quiet_for=5.0, min_interval=0.0)
    for step in range(1, 11):
        clock.now += 1.0
        slow.update(step)
    assert [line.split(":")[1].split()[0] for line in lines] == [
        "5/10",
        "6/10",
        "7/10",
        "8/10",
        "9/10",
        "10/10",
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"total": 0}, "total must be >= 1. Received: total=0"),
        ({"total": 10, "start": 11}, r"start must be in \[0, total=10\]. Received: start=11"),
        ({"total": 10, "min_interval": -1}, "Received: min_interval=-1"),
        ({"total": 10, "quiet_for": -2}, "quiet_for=-2"),
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


@pytest.mark.parametrize(
    "amount, seconds, unit, text",
    [
        (100, 30.0, "steps", "3.33 steps/s"),
        (5, 5.0, "steps", "1 steps/s"),
        (20200, 10.0, "target images", "2020 target images/s"),
        (5, 226.0, "steps", "45.2 s/step"),
        (50, 226.0, "target images", "4.52 s/target image"),
        (0, 3.0, "steps", "0 steps/s"),
    ],
)
def test_format_rate_turns_slow_work_into_seconds_per_unit(amount, seconds, unit, text):
    assert format_rate(amount, seconds, unit) == text


def test_slow_progress_reads_as_seconds_per_step():
    progress, clock, lines = _progress(total=20, min_interval=0.0, unit="steps")
    clock.now += 450.0
    line = progress.update(10)
    assert "(45 s/step)" in line and "0.0" not in line


def test_per_unit_rate_counts_the_smaller_items():
    progress, clock, lines = _progress(total=1000, unit="test images", per_unit=(10, "pairs"))
    clock.now += 20.0
    line = progress.update(100)  # 100 images = 1000 pairs in 20 s
    assert "(5 test images/s, 50 pairs/s)" in line and "~3 min 00 s left" in line


@pytest.mark.parametrize("per_unit", [(0, "pairs"), 10, (-1, "pairs")])
def test_per_unit_must_be_a_positive_count_and_a_name(per_unit):
    with pytest.raises(ValueError, match="per_unit"):
        Progress(10, "x", per_unit=per_unit)
