"""Entry point: ``python -m msgnn_lite.bench <command> ...``."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import msgnn_lite.bench as _pkg


def _commands() -> dict:
    out = {}
    for info in pkgutil.iter_modules(_pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{_pkg.__name__}.{info.name}")
        if hasattr(mod, "add_arguments") and hasattr(mod, "run"):
            out[info.name] = mod
    return out


def main(argv: list[str] | None = None) -> int:
    commands = _commands()
    parser = argparse.ArgumentParser(prog="python -m msgnn_lite.bench", description=_pkg.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, mod in sorted(commands.items()):
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else name,
                           description=mod.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
    args = parser.parse_args(argv)
    return int(commands[args.command].run(args) or 0)


if __name__ == "__main__":
    from msgnn_lite.cli import run_main

    sys.exit(run_main(main, "python -m msgnn_lite.bench"))
