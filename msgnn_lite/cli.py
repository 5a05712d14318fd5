"""What every command line of the package shares: argparse types that check a flag's value
before anything runs, and one-line errors instead of tracebacks.

``python -m msgnn_lite.bench``, ``run_notebooks``, ``classroom``, ``report`` and
``distributed`` run their ``main`` through :func:`run_main`: an expected error (a bad value,
a missing or damaged file, a diverged run) is printed as one line, ``<prog>: error: <what>``,
on stderr with exit status 2; ``MSGNN_TRACEBACK=1`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

__all__ = ["positive_int", "nonnegative_int", "positive_float", "fraction", "unit_interval", "device", "run_main", "EXPECTED_ERRORS"]


def _number(cast, accept, expected: str):
    """An argparse type: ``cast(value)``, refused with "expected <expected>" unless ``accept``."""
    def parse(value: str):
        try:
            v = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not accept(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return v
    parse.__name__ = expected  # what argparse names in its own messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
fraction = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
unit_interval = _number(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def device(value: str) -> str:
    """argparse type for ``--device``: a device this machine has (``auto``, ``cpu``, ``cuda``,
    ``cuda:1``, ``mps``), checked before anything runs."""
    from .utils import resolve_device

    try:
        resolve_device(value)
    except (ValueError, RuntimeError) as err:
        raise argparse.ArgumentTypeError(str(err).splitlines()[0]) from None
    return value


def _expected_errors() -> tuple[type[BaseException], ...]:
    from .checks import TrainingDivergedError
    from .data import DatasetIntegrityError, DatasetUnavailableError

    return (ValueError, TypeError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
            FileExistsError, DatasetUnavailableError, DatasetIntegrityError, TrainingDivergedError, ImportError)


EXPECTED_ERRORS = "ValueError, TypeError, file errors, dataset errors, a diverged run, a missing package"


def run_main(main, prog: str, argv: list[str] | None = None) -> int:
    """Run ``main(argv)`` and turn an expected error into one line on stderr (exit status 2)."""
    try:
        return int(main(argv) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as err:
        if os.environ.get("MSGNN_TRACEBACK", "0") not in ("0", "", "false"):
            raise
        text = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 2
