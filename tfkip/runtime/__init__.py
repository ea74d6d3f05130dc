"""Process policy that launch scripts opt into: XLA settings, memory trimming, progress
lines and one-line errors. Nothing here runs at import.

* `tfkip.runtime.xla`: `configure_xla`, the XLA flags tfkip's programs are tuned for.
* `tfkip.runtime.cli`: ``run(main)``, absl's ``app.run`` with bad input as one line.
* `tfkip.runtime.progress`: progress lines with rates and an ETA.
* `tfkip.runtime.memory`: returning freed heap memory to the system during long runs.
"""

from tfkip.runtime.xla import configure_xla

__all__ = ["configure_xla"]
