"""Build the course website: ``make site`` (or ``python site/build.py [--out DIR]``).

Runs Sphinx with this folder's conf.py over the repository (see conf.py), warnings as errors,
from a fresh environment, then prints the build time and the page count. The stored notebook
outputs are the content: nothing is executed and nothing is fetched from the internet.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "_build" / "html"


def build(out: Path = DEFAULT_OUT, quiet: bool = True) -> tuple[float, int]:
    """Build into ``out``; return (seconds, number of HTML pages). Raises on any warning."""
    from sphinx.cmd.build import build_main

    t0 = time.perf_counter()
    argv = ["-b", "html", "-c", str(HERE), "-d", str(out.parent / "doctrees"), "-W", "--keep-going", "-E",
            str(ROOT), str(out)]
    if quiet:
        argv.insert(0, "-q")
    status = build_main(argv)
    if status != 0:
        raise RuntimeError(f"the site build failed (exit {status}): see the warnings above; each one is an error")
    return time.perf_counter() - t0, sum(1 for _ in out.rglob("*.html"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python site/build.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    try:
        seconds, pages = build(args.out)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.out
    print(f"site built in {seconds:.0f} s: {pages} pages in {shown}/ (open {shown}/index.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
