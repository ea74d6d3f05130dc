"""Progress lines with elapsed time and estimated time left, for long jobs.

>>> from tfkip.runtime.progress import Progress
>>> progress = Progress(1000, "KIP", unit="steps")
>>> for step in range(1, 1001):
...     ...  # one step of work
...     progress.update(step)  # doctest: +SKIP
I... KIP: 150/1000 steps (15%), 12 s elapsed, ~1 min 08 s left (12.3 steps/s)

A line is logged (absl ``logging.info`` by default) on the first update, then at most once
every ``min_interval`` seconds, and once when ``done`` reaches ``total``; with
``quiet_for=S`` nothing is logged before the job has run S seconds, so short jobs stay
silent. The rate and
the time left count only the work done since the ``Progress`` was created (``start``), so
a resumed run estimates from its own speed, not from steps done before the restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from absl import logging

__all__ = ["Progress", "format_duration", "format_rate"]


def format_duration(seconds: float) -> str:
    """``"8.2 s"``, ``"12 s"``, ``"3 min 05 s"`` or ``"2 h 01 min"`` for ``seconds >= 0``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_rate(amount: float, seconds: float, unit: str) -> str:
    """``"12.3 steps/s"`` or ``"2020 steps/s"`` at a unit a second or more, else ``"45.2 s/step"``.

    ``unit`` is plural (``"steps"``, ``"test images"``); the per-unit form drops its final
    "s". Slow work (a ConvNet KIP step of a minute) reads as seconds per unit instead of
    ``"0.0 steps/s"``.
    """
    if amount <= 0 or seconds <= 0:
        return f"0 {unit}/s"
    rate = amount / seconds
    if rate >= 1:
        return f"{rate:.0f} {unit}/s" if rate >= 100 else f"{rate:.3g} {unit}/s"
    return f"{seconds / amount:.3g} s/{unit[:-1] if unit.endswith('s') else unit}"


class Progress:
    """Logs ``desc: done/total unit (pct%), elapsed, ~left`` at a bounded rate.

    Args:
      total: amount of work when finished (steps, images, chunks), ``>= 1``.
      desc: what is progressing, the start of each line (e.g. ``"KIP"``).
      unit: the name of one unit of work, shown after the counts.
      start: work already done when this object is created (e.g. the step a resumed run
        starts from); the rate and time left use only work done after it.
      per_unit: ``(count, name)``: each unit of work stands for ``count`` smaller items,
        whose rate the line shows too (an evaluation of ``n_s`` support images counts
        ``(n_s, "pairs")`` kernel pairs per test image). None: no second rate.
      min_interval: seconds between two lines (the last line is always logged).
      quiet_for: no line at all before this many seconds have elapsed (0: log from the
        first update).
      log_fn: ``log_fn(line)`` writes a line; default absl ``logging.info``. Pass ``print``
        to write to stdout.
      clock: monotonic clock in seconds (tests pass a fake one).

    Raises:
      ValueError: ``total < 1``, ``start`` outside ``[0, total]`` or ``min_interval < 0``.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "steps",
        start: int = 0,
        per_unit: tuple[float, str] | None = None,
        min_interval: float = 10.0,
        quiet_for: float = 0.0,
        log_fn: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if int(total) < 1:
            raise ValueError(f"Progress total must be >= 1. Received: total={total}")
        if not 0 <= int(start) <= int(total):
            raise ValueError(
                f"Progress start must be in [0, total={total}]. Received: start={start}"
            )
        if min_interval < 0 or quiet_for < 0:
            raise ValueError(
                "Progress min_interval and quiet_for must be >= 0 seconds. "
                f"Received: min_interval={min_interval}, quiet_for={quiet_for}"
            )
        if per_unit is not None and not (isinstance(per_unit, tuple) and per_unit[0] > 0):
            raise ValueError(
                "Progress per_unit must be a (count > 0, name) tuple. "
                f"Received: per_unit={per_unit!r}"
            )
        self.per_unit = per_unit
        self.quiet_for = float(quiet_for)
        self.total, self.desc, self.unit = int(total), desc, unit
        self.start = int(start)
        self.min_interval = float(min_interval)
        self._log = log_fn if log_fn is not None else (lambda line: logging.info("%s", line))
        self._clock = clock
        self._t0 = clock()
        self._last_log: float | None = None
        self._finished_logged = False
        self.done = self.start

    @property
    def elapsed(self) -> float:
        """Seconds since this object was created."""
        return self._clock() - self._t0

    def seconds_left(self) -> float | None:
        """Estimated seconds to ``total`` at the rate since ``start``; ``None`` if unknown."""
        progressed = self.done - self.start
        if self.done >= self.total:
            return 0.0
        if progressed <= 0 or self.elapsed <= 0:
            return None
        return (self.total - self.done) * self.elapsed / progressed

    def line(self) -> str:
        """The progress line for the current state (what :meth:`update` logs)."""
        elapsed = self.elapsed
        pct = 100.0 * self.done / self.total
        text = (
            f"{self.desc}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), "
            f"{format_duration(elapsed)} elapsed"
        )
        left = self.seconds_left()
        if self.done >= self.total:
            text += ", done"
        elif left is not None:
            text += f", ~{format_duration(left)} left"
        if elapsed > 0 and self.done > self.start:
            rate = format_rate(self.done - self.start, elapsed, self.unit)
            if self.per_unit is not None:
                count, name = self.per_unit
                rate += ", " + format_rate((self.done - self.start) * count, elapsed, name)
            text += f" ({rate})"
        return text

    def update(self, done: int, *, force: bool = False) -> str | None:
        """Records that ``done`` units are finished; logs a line when one is due.

        A line is due on the first call, once ``min_interval`` seconds have passed since the
        last line, the first time ``done >= total``, or with ``force=True``; but none is
        logged (unless forced) before ``quiet_for`` seconds have elapsed.

        Returns:
          The logged line, or ``None`` when nothing was logged.
        """
        self.done = min(int(done), self.total)
        now = self._clock()
        finished = self.done >= self.total
        if not force and (finished and self._finished_logged or now - self._t0 < self.quiet_for):
            return None
        due = (
            force or finished or self._last_log is None or now - self._last_log >= self.min_interval
        )
        if not due:
            return None
        self._last_log = now
        self._finished_logged = finished
        text = self.line()
        self._log(text)
        return text
