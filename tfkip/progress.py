"""Progress lines with elapsed time and estimated time left, for long jobs.

>>> from tfkip.progress import Progress
>>> progress = Progress(1000, "KIP", unit="steps")
>>> for step in range(1, 1001):
...     ...  # one step of work
...     progress.update(step)  # doctest: +SKIP
I... KIP: 150/1000 steps (15%), 12 s elapsed, ~1 min 08 s left (12.3 steps/s)

A line is logged (absl ``logging.info`` by default) on the first update, then at most once
every ``min_interval`` seconds, and always when ``done`` reaches ``total``. The rate and
the time left count only the work done since the ``Progress`` was created (``start``), so
a resumed run estimates from its own speed, not from steps done before the restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from absl import logging

__all__ = ["Progress", "format_duration"]


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


class Progress:
    """Logs ``desc: done/total unit (pct%), elapsed, ~left`` at a bounded rate.

    Args:
      total: amount of work when finished (steps, images, chunks), ``>= 1``.
      desc: what is progressing, the start of each line (e.g. ``"KIP"``).
      unit: the name of one unit of work, shown after the counts.
      start: work already done when this object is created (e.g. the step a resumed run
        starts from); the rate and time left use only work done after it.
      min_interval: seconds between two lines (the last line is always logged).
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
        min_interval: float = 10.0,
        log_fn: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if int(total) < 1:
            raise ValueError(f"Progress total must be >= 1. Received: total={total}")
        if not 0 <= int(start) <= int(total):
            raise ValueError(
                f"Progress start must be in [0, total={total}]. Received: start={start}"
            )
        if min_interval < 0:
            raise ValueError(
                f"Progress min_interval must be >= 0 seconds. Received: min_interval={min_interval}"
            )
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
            text += f" ({(self.done - self.start) / elapsed:.3g} {self.unit}/s)"
        return text

    def update(self, done: int, *, force: bool = False) -> str | None:
        """Records that ``done`` units are finished; logs a line when one is due.

        A line is due on the first call, once ``min_interval`` seconds have passed since the
        last line, the first time ``done >= total``, or with ``force=True``.

        Returns:
          The logged line, or ``None`` when nothing was logged.
        """
        self.done = min(int(done), self.total)
        now = self._clock()
        finished = self.done >= self.total
        if finished and self._finished_logged and not force:
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
