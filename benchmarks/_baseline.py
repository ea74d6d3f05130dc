"""Shared harness of the side-by-side benchmarks (tfkip vs the neural-tangents baseline).

Used by ``benchmarks/kip_step.py`` and ``benchmarks/kernels.py``. Every measurement runs in
its own subprocess; the parent reaps it with ``os.wait4``, whose resource usage is that one
child's, so ``ru_maxrss`` is the peak RSS of that process alone (the TensorFlow or JAX
import included). A watchdog kills a child whose RSS passes ``--max-rss-mb`` (this machine
is shared) and a child that outlives ``--timeout``. The neural-tangents scripts are run by
path from ``--nt-scripts`` with ``--nt-python``; they are never imported or copied here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_NT_SCRIPTS = os.path.normpath(os.path.join(REPO, "..", "shared", "tools", "nt-baseline"))


def _mem_available_mb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 16384.0


def add_common_arguments(parser: argparse.ArgumentParser, case_names) -> None:
    """The flags both side-by-side benchmarks share."""
    parser.add_argument(
        "--nt-python",
        metavar="PATH",
        help="interpreter of the neural-tangents venv (e.g. /tmp/nt-baseline-venv/bin/python,\n"
        "built by ../shared/tools/nt-baseline/setup.sh). With it, every case runs tfkip\n"
        "and neural-tangents interleaved and prints both and the ratio; without it,\n"
        "tfkip alone.",
    )
    parser.add_argument(
        "--nt-scripts",
        metavar="DIR",
        default=DEFAULT_NT_SCRIPTS,
        help="directory holding the baseline's bench.py and kip_step.py\n(default: %(default)s)",
    )
    parser.add_argument(
        "--cases",
        metavar="NAMES",
        help="comma-separated case names to run (default: the standard cases; 'all'\n"
        f"adds the extra ones). Names: {', '.join(case_names)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds per case: round r runs tfkip then NT (r even) or NT then\n"
        "tfkip (r odd), each in a fresh process. Times are the median over rounds, RSS\n"
        "the max, the ratio the median of the per-round ratios (default: per case)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds before one subprocess is killed (default: %(default)s)",
    )
    parser.add_argument(
        "--max-rss-mb",
        type=float,
        default=round(0.6 * _mem_available_mb()),
        help="kill a subprocess whose RSS exceeds this many MB; the machine is shared\n"
        "(default: 60%% of MemAvailable at start, here %(default)s)",
    )
    add_log_argument(parser)


def select_cases(spec: str | None, standard, extra, parser, quick=None) -> list[str]:
    """Case names from ``--cases`` (None: ``quick`` if given, else the standard ones;
    'all': standard + extra)."""
    if spec is None:
        return list(standard if quick is None else quick)
    names = []
    for name in spec.split(","):
        name = name.strip()
        if name == "all":
            names += [n for n in (*standard, *extra) if n not in names]
        elif name in standard or name in extra:
            if name not in names:
                names.append(name)
        elif name:
            parser.error(f"unknown case {name!r}; choose from {', '.join((*standard, *extra))}")
    return names


def vmhwm_mb() -> float:
    """This process's peak RSS so far in MB (VmHWM), for a child to report itself."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def exit_on_sigterm() -> None:
    """Makes SIGTERM raise SystemExit, so a killed parent also kills its running child."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _error_line(stderr: str) -> str:
    """The most telling line of a failed child's stderr (the last one naming an error)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    memory = [line for line in lines if "Out of memory" in line]
    named = [line for line in lines if "Error" in line or "error:" in line]
    line = (memory or named or lines or ["no output"])[-1]
    return line if len(line) <= 200 else line[:200] + "..."


def run_measured(cmd, *, env=None, timeout: float, max_rss_mb: float) -> dict:
    """Runs ``cmd``; returns its last stdout JSON line plus ``peak_rss_mb`` and ``wall_s``.

    On failure the dict has ``error`` instead (exit code and the last stderr line naming an
    error, timeout, or the RSS limit); a failed child's whole stderr is kept in a temporary
    file named by ``stderr_file``.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        killed = None
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if killed is None:
                    if time.perf_counter() - start > timeout:
                        killed = f"timeout after {timeout:.0f} s"
                    elif _rss_mb(proc.pid) > max_rss_mb:
                        killed = f"killed: RSS above --max-rss-mb={max_rss_mb:.0f}"
                    if killed:
                        _kill_group(proc.pid)
                time.sleep(0.1)
        except BaseException:  # Ctrl-C or SIGTERM of the parent: take the child down too
            _kill_group(proc.pid)
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = dict(peak_rss_mb=usage.ru_maxrss / 1024, wall_s=wall)
    if killed:
        result["error"] = killed
        return result
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        result["error"] = f"rc={proc.returncode}: {_error_line(stderr)}"
        fd, path = tempfile.mkstemp(prefix="tfkip-bench-", suffix=".stderr")
        with os.fdopen(fd, "w") as f:
            f.write(stderr)
        result["stderr_file"] = path
        return result
    result.update(json.loads(lines[-1]))
    return result


def tfkip_env() -> dict:
    """The environment for a tfkip child: this checkout's tfkip first on the path, and the
    XLA settings the launchers apply (`tfkip.runtime.configure_xla`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO)
    from tfkip.runtime.xla import configure_xla

    configure_xla(env)
    return env


def nt_env() -> dict:
    """The environment for a neural-tangents child (no tfkip checkout on the path)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def check_nt(args, parser, script: str) -> str | None:
    """Validates ``--nt-python`` / ``--nt-scripts``; returns the baseline script's path."""
    if not args.nt_python:
        return None
    if not os.access(args.nt_python, os.X_OK):
        parser.error(f"--nt-python={args.nt_python} is not an executable")
    path = os.path.join(args.nt_scripts, script)
    if not os.path.isfile(path):
        parser.error(f"{path} not found (set --nt-scripts)")
    return path


def interleave(case: str, rounds: int, run_tfkip, run_nt, seconds_key: str, **extra) -> dict:
    """Runs ``rounds`` interleaved rounds of one case; returns the `aggregate` row.

    ``run_tfkip()`` / ``run_nt()`` each return a `run_measured` dict (``run_nt`` may be
    None: tfkip alone). Each result is printed to stderr as one JSON line, with ``case``,
    ``side``, ``round`` and ``extra`` added (what ``--from-log`` reads back).
    """
    results = []
    for r in range(rounds):
        order = ["tfkip", "nt"] if r % 2 == 0 else ["nt", "tfkip"]
        for side in order:
            fn = run_tfkip if side == "tfkip" else run_nt
            if fn is None:
                continue
            res = {**fn(), "case": case, "side": side, "round": r, **extra}
            print(json.dumps(res), file=sys.stderr, flush=True)
            results.append(res)
    return aggregate(case, results, seconds_key)


def aggregate(case: str, results: list[dict], seconds_key: str) -> dict:
    """One table row from the per-process results of one case.

    Per side: the median seconds over rounds, the max peak RSS, the first error. The ratio
    is the median of the per-round tfkip / NT ratios (rounds where both sides succeeded),
    with their range when there are several.
    """
    row = {"case": case, "results": results}
    for side in ("tfkip", "nt"):
        mine = [res for res in results if res["side"] == side]
        ok = [res for res in mine if seconds_key in res]
        errors = [res["error"] for res in mine if "error" in res]
        row[side] = dict(
            seconds=statistics.median(res[seconds_key] for res in ok) if ok else None,
            peak_rss_mb=max((res["peak_rss_mb"] for res in mine), default=None),
            error=errors[0] if errors else None,
            results=mine,
        )
    by_round = {}
    for res in results:
        if seconds_key in res:
            by_round.setdefault(res["round"], {})[res["side"]] = res[seconds_key]
    ratios = [t["tfkip"] / t["nt"] for t in by_round.values() if len(t) == 2]
    row["rounds"] = len({res["round"] for res in results})
    row["ratio"] = statistics.median(ratios) if ratios else None
    row["ratio_range"] = (min(ratios), max(ratios)) if len(ratios) > 1 else None
    return row


def rows_from_log(paths, seconds_key: str) -> list[dict]:
    """Rows rebuilt from the stderr JSON lines of earlier runs (cases in order of appearance).

    Several logs are merged; rounds of one case in different logs are renumbered so they
    stay apart.
    """
    cases: dict[str, list[dict]] = {}
    for i, path in enumerate(paths):
        with open(path) as f:
            for line in f:
                if not line.startswith("{"):
                    continue
                res = json.loads(line)
                if "side" in res and "case" in res:
                    res["round"] = (i, res.get("round", 0))
                    cases.setdefault(res["case"], []).append(res)
    return [aggregate(case, results, seconds_key) for case, results in cases.items()]


def add_log_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-log",
        metavar="FILE",
        nargs="+",
        help="run nothing: print the table from the JSON lines earlier runs wrote to\n"
        "stderr (several files are merged, e.g. runs of different --cases)",
    )


def fmt_seconds(side: dict) -> str:
    if side["seconds"] is None:
        return f"failed ({side['error']})" if side["error"] else "-"
    s = side["seconds"]
    text = f"{s:.4f}" if s < 0.1 else f"{s:.3f}" if s < 10 else f"{s:.1f}"
    return text + (" *" if side["error"] else "")


def fmt_rss(side: dict) -> str:
    return "-" if side["peak_rss_mb"] is None else f"{side['peak_rss_mb']:.0f}"


def fmt_ratio(row: dict) -> str:
    if row["ratio"] is None:
        return "-"
    text = f"{row['ratio']:.2f}"
    if row["ratio_range"]:
        lo, hi = row["ratio_range"]
        text += f" ({lo:.2f}-{hi:.2f})"
    return text


def load_line() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        return "load average ?"
