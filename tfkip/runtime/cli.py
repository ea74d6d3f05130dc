"""Entry point for launch scripts: bad input prints one line, not a traceback.

``tfkip.runtime.cli.run(main)`` replaces ``absl.app.run(main)`` in a launch script: it
defines ``--debug`` and ``--force_unlock``, applies `tfkip.runtime.configure_xla` and runs
``main``. Flag parsing,
``--help``, ``app.UsageError`` and the exit status of ``main`` behave exactly as with
``app.run``. In addition, an exception that means *the user gave a bad value* (a
:data:`USER_ERRORS` type: ``ValueError`` -- which tfkip's own errors such as
``NotPositiveDefiniteError`` and ``ConfigMismatchError`` subclass --, ``FileNotFoundError``,
``NotADirectoryError``, ``PermissionError``, and TensorFlow's not-found / permission /
unavailable errors) prints one line to stderr::

    error: <message>

and exits with status :data:`USER_ERROR_EXIT_CODE` (2). So do the run-time faults that
`tfkip.runtime.faults.describe` recognises (out of space, read-only or vanished folder, lost
permission, out of memory, unreadable checkpoints, a non-finite step), with a message
naming the path and the last good checkpoint. The message is the exception's own
text, which in tfkip names the bad value and the fix ("... Received: steps=-1"). With
``--debug`` or ``--verbosity=1`` (or higher) the exception propagates unchanged, so the
full traceback is printed. Any other exception (a bug) always propagates with its
traceback.

>>> from tfkip.runtime import cli
>>> def main(argv):
...     raise ValueError("--steps must be >= 1. Received: steps=0")
>>> cli.run(main, argv=["prog"])  # doctest: +SKIP
error: --steps must be >= 1. Received: steps=0      (on stderr; exit status 2)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from absl import app, flags

from tfkip.runtime import faults, lock, logs
from tfkip.runtime.xla import configure_xla

__all__ = [
    "USER_ERRORS",
    "USER_ERROR_EXIT_CODE",
    "format_error",
    "own",
    "run",
    "user_error_types",
]

USER_ERROR_EXIT_CODE = 2

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
"""Exception types reported as one line (TensorFlow's are added by :func:`user_error_types`)."""


def define_flags() -> None:
    """Defines ``--debug`` and ``--force_unlock`` in absl's flags unless they exist (called
    by `run`, so that an import of this module leaves the process's flags as they were)."""
    if "debug" not in flags.FLAGS:
        flags.DEFINE_bool(
            "debug",
            False,
            "Print the full Python traceback of an error caused by a bad flag value or bad "
            "input, instead of the one-line 'error: ...' message (same as --verbosity=1).",
        )
    if "force_unlock" not in flags.FLAGS:
        flags.DEFINE_bool(
            "force_unlock",
            False,
            "Take over the output folder's lock file (tfkip.lock) even if another process "
            "seems to own it; only when that process is gone (e.g. its machine crashed).",
        )


@contextlib.contextmanager
def own(
    path: str, is_file: bool = False, chief: bool = True, checkpoints: str | None = None
) -> Iterator[None]:
    """Owns the output ``path`` for the ``with`` block: its lock file
    (`tfkip.runtime.lock.hold`, ``--force_unlock`` honoured) and fault reporting
    (`tfkip.runtime.faults.watching`; ``checkpoints`` names the sub-folder of checkpoints that a
    fault message reports the last good one of).
    """
    values = flags.FLAGS
    force = "force_unlock" in values and values.is_parsed() and values["force_unlock"].value
    with lock.hold(path, force=force, chief=chief, is_file=is_file):
        with faults.watching(None if is_file else path, checkpoints=checkpoints, cleanup=chief):
            yield


def user_error_types() -> tuple[type[BaseException], ...]:
    """:data:`USER_ERRORS` plus TensorFlow's file-system errors if TensorFlow is imported.

    ``tf.errors.NotFoundError`` (a missing ``gs://`` object), ``PermissionDeniedError``,
    ``UnavailableError``, ``DeadlineExceededError`` and ``UnauthenticatedError`` (an
    unreachable bucket) are user errors; other TensorFlow errors are not.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None or not hasattr(tf, "errors"):
        return USER_ERRORS
    errors = tf.errors
    return USER_ERRORS + (
        errors.NotFoundError,
        errors.PermissionDeniedError,
        errors.UnavailableError,
        errors.DeadlineExceededError,
        errors.UnauthenticatedError,
    )


def format_error(error: BaseException) -> str:
    """The one line printed for ``error``: ``"error: <message>"`` with newlines folded.

    TensorFlow errors use their ``message`` attribute; an empty message falls back to the
    type name.
    """
    message = getattr(error, "message", None) or str(error)
    message = " ".join(message.split()) or type(error).__name__
    return f"error: {message}"


def _traceback_wanted() -> bool:
    values = flags.FLAGS
    if not values.is_parsed():
        return False
    return bool(values["debug"].value) or values["verbosity"].value >= 1


def run(
    main: Callable[[list[str]], Any],
    argv: Sequence[str] | None = None,
    flags_parser: Callable[[list[str]], Any] | None = None,
) -> None:
    """Runs ``main`` like ``absl.app.run``, reporting user errors as one line.

    Args:
      main: the script's ``main(argv)``; its return value becomes the exit status, as with
        ``app.run``.
      argv: command line (default ``sys.argv``), passed through to ``app.run``.
      flags_parser: optional custom flag parser, passed through to ``app.run``.

    Raises:
      SystemExit: always (as ``app.run``); status :data:`USER_ERROR_EXIT_CODE` after a user
        error unless ``--debug``/``--verbosity>=1`` is set.
    """

    def wrapped(args: list[str]) -> Any:
        try:
            return main(args)
        except Exception as error:
            message = faults.describe(error)
            if message is None and not isinstance(error, user_error_types()):
                raise
            if _traceback_wanted():
                raise
            sys.stdout.flush()
            line = format_error(error) if message is None else format_error(ValueError(message))
            print(line, file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT_CODE)

    define_flags()
    configure_xla()  # before anything is compiled: see tfkip.runtime.xla
    # List --debug in the script's own --help (absl shows the main module's key flags).
    main_module = sys.argv[0] if argv is None else list(argv)[0]
    flags.FLAGS.register_key_flag_for_module(main_module, flags.FLAGS["debug"])
    flags.FLAGS.register_key_flag_for_module(main_module, flags.FLAGS["force_unlock"])
    logs.quiet_tensorflow_info()
    kwargs = {} if flags_parser is None else {"flags_parser": flags_parser}
    app.run(wrapped, argv=None if argv is None else list(argv), **kwargs)
