"""Classroom use: exercises in the notebooks, student copies, and a quick solution check.

    python -m msgnn_lite.classroom                    # student copies of every notebook -> classroom/student/
    python -m msgnn_lite.classroom generate --only 00 05 --output handout/
    python -m msgnn_lite.classroom check              # every solution passes its check cell (in-process, fast)
    python -m msgnn_lite.classroom list               # the exercises, one line each

The instructor notebooks in ``notebooks/`` are the single source. An exercise follows nbgrader's
conventions, so ``nbgrader generate_assignment`` works on the same files:

* a **solution cell**: a code cell with ``metadata.nbgrader = {"solution": true, "grade": false,
  "grade_id": "exN_solution", ...}`` and ``metadata.classroom = {"exercise": N, "task": "..."}``,
  whose solution lines sit between ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
* one or more **check cells** after it: ``metadata.nbgrader = {"grade": true, "points": P,
  "grade_id": "exN_check", "locked": true, ...}`` and ``metadata.classroom = {"exercise": N}``,
  asserting a property of the student's answer (agreement with the library, an invariant);
  asserts between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are for grading only.

The built-in generator (used when nbgrader is not installed, or with ``--engine builtin``)
replaces each solution region by a scaffold that raises
``NotImplementedError("exercise N: your turn — <task>")``, removes hidden tests, clears every
output and writes the copies atomically; the same input gives byte-identical output.
With ``--engine nbgrader`` (the default when nbgrader is importable) nbgrader's own
``generate_assignment`` writes them, with nbgrader's stub and checksums.

Exercise cells may use only what the cells **before the first exercise** define (imports,
parameters, ``setup``, a light first section) and their own exercise's cells, never another
exercise's answer or the notebook's later results: a student copy then fails only where the
student has work to do. ``check`` runs each exercise that way, in one Python process.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .utils import atomic_write, repo_root

__all__ = [
    "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN", "END_HIDDEN", "Exercise", "ExerciseError",
    "find_exercises", "student_copy", "render", "generate", "run_cells", "check_notebook",
    "run_student_copy", "main",
]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
DEFAULT_OUTPUT = Path("classroom") / "student"


class ExerciseError(ValueError):
    """An instructor notebook whose exercise cells break the conventions above."""


@dataclass
class Exercise:
    """One exercise of a notebook: its number, task, solution cell and check cells (cell indices)."""

    number: int
    task: str
    solution: int
    checks: list[int] = field(default_factory=list)
    points: float = 0.0


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _role(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "check"
    return None


def _regions(lines: list[str], begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """(first, last) line indices of every ``begin`` ... ``end`` region, markers included."""
    out, start = [], None
    for i, line in enumerate(lines):
        text = line.strip()
        if text == begin:
            if start is not None:
                raise ExerciseError(f"{where}: {begin!r} at line {i + 1} inside an open region")
            start = i
        elif text == end:
            if start is None:
                raise ExerciseError(f"{where}: {end!r} at line {i + 1} without {begin!r}")
            out.append((start, i))
            start = None
    if start is not None:
        raise ExerciseError(f"{where}: {begin!r} at line {start + 1} is never closed by {end!r}")
    return out


def find_exercises(nb, name: str = "notebook") -> list[Exercise]:
    """The exercises of an instructor notebook, validated: numbered 1, 2, ... in order, each
    solution cell with at least one marked region and followed by at least one check cell."""
    found: dict[int, Exercise] = {}
    grade_ids: set[str] = set()
    for idx, cell in enumerate(nb["cells"]):
        src, role = _source(cell), _role(cell)
        where = f"{name}, cell {idx}"
        for marker in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN):
            if marker in src and role is None:
                raise ExerciseError(f"{where}: {marker!r} in a cell without nbgrader solution/grade metadata")
        if role is None:
            continue
        if cell.get("cell_type") != "code":
            raise ExerciseError(f"{where}: exercise cells must be code cells")
        meta = cell["metadata"]
        grade_id = meta["nbgrader"].get("grade_id")
        if not grade_id or grade_id in grade_ids:
            raise ExerciseError(f"{where}: nbgrader grade_id must be set and unique, got {grade_id!r}")
        grade_ids.add(grade_id)
        number = meta.get("classroom", {}).get("exercise")
        if not isinstance(number, int) or number < 1:
            raise ExerciseError(f"{where}: metadata.classroom.exercise must be a positive int, got {number!r}")
        lines = src.splitlines()
        if role == "solution":
            if number in found or number != len(found) + 1:
                raise ExerciseError(f"{where}: exercise {number} out of order (expected {len(found) + 1})")
            if not _regions(lines, BEGIN_SOLUTION, END_SOLUTION, where):
                raise ExerciseError(f"{where}: a solution cell needs a {BEGIN_SOLUTION!r} ... {END_SOLUTION!r} region")
            task = meta["classroom"].get("task")
            if not task:
                raise ExerciseError(f"{where}: metadata.classroom.task (one line for the scaffold) is missing")
            found[number] = Exercise(number, task, idx)
        else:
            if number not in found or number != len(found):
                raise ExerciseError(f"{where}: check cell of exercise {number} must follow its solution cell")
            if _regions(lines, BEGIN_SOLUTION, END_SOLUTION, where):
                raise ExerciseError(f"{where}: solution markers in a check cell")
            _regions(lines, BEGIN_HIDDEN, END_HIDDEN, where)
            found[number].checks.append(idx)
            found[number].points += float(meta["nbgrader"].get("points", 0))
    for ex in found.values():
        if not ex.checks:
            raise ExerciseError(f"{name}: exercise {ex.number} has no check cell")
    return list(found.values())


def scaffold(indent: str, number: int, task: str) -> list[str]:
    """What replaces a solution region in a student copy."""
    return [f"{indent}# YOUR CODE HERE (exercise {number})",
            f'{indent}raise NotImplementedError({f"exercise {number}: your turn — {task}"!r})']


def _strip(lines: list[str], regions: list[tuple[int, int]], replacement) -> list[str]:
    out, last = [], 0
    for first, end in regions:
        out += lines[last:first] + replacement(lines[first][: len(lines[first]) - len(lines[first].lstrip())])
        last = end + 1
    return out + lines[last:]


def student_copy(nb, name: str = "notebook"):
    """A student copy of an instructor notebook (a new object): solutions replaced by scaffolds,
    hidden tests removed, outputs and execution counts cleared, papermill metadata dropped."""
    exercises = {ex.solution: ex for ex in find_exercises(nb, name)}
    out = copy.deepcopy(nb)
    out.get("metadata", {}).pop("papermill", None)
    for idx, cell in enumerate(out["cells"]):
        for key in ("papermill", "execution"):
            cell.get("metadata", {}).pop(key, None)
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        lines = _source(cell).splitlines()
        if idx in exercises:
            ex = exercises[idx]
            cell["source"] = "\n".join(_strip(lines, _regions(lines, BEGIN_SOLUTION, END_SOLUTION, name),
                                              lambda indent, ex=ex: scaffold(indent, ex.number, ex.task)))
        elif _role(cell) == "check":
            cell["source"] = "\n".join(_strip(lines, _regions(lines, BEGIN_HIDDEN, END_HIDDEN, name),
                                              lambda indent: []))
    return out


def render(nb) -> str:
    """The notebook in nbformat's own JSON layout (validated; sorted keys, sources as lists of lines)."""
    import nbformat

    text = nbformat.writes(nbformat.from_dict(nb))
    return text if text.endswith("\n") else text + "\n"


def _read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _notebooks(only: list[str] | None) -> list[Path]:
    from .run_notebooks import discover

    return discover(repo_root() / "notebooks", only)


def nbgrader_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nbgrader") is not None


NBGRADER_CONFIG = """c = get_config()
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError('exercise: your turn')"}
"""


def _generate_with_nbgrader(paths: list[Path], output: Path) -> list[Path]:
    """nbgrader's own ``generate_assignment`` in a throw-away course folder, copied to ``output``."""
    with tempfile.TemporaryDirectory(prefix="msgnn-course-") as tmp:
        source = Path(tmp) / "source" / "msgnn"
        source.mkdir(parents=True)
        for p in paths:
            shutil.copy(p, source / p.name)
        (Path(tmp) / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", "msgnn", "--force",
               f"--CourseDirectory.root={tmp}", f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db"]
        env = dict(os.environ)  # nbgrader runs the `alembic` script that sits next to this interpreter
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env)
        if proc.returncode:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{proc.stdout}\n{proc.stderr}")
        return [atomic_write(output / p.name, (Path(tmp) / "release" / "msgnn" / p.name).read_text(encoding="utf-8"))
                for p in paths]


def generate(only: list[str] | None = None, output: Path | None = None, engine: str = "auto") -> list[Path]:
    """Write a student copy of every numbered notebook (or ``only`` some) to ``output``
    (default ``<repo>/classroom/student``); return the paths written."""
    if engine not in ("auto", "builtin", "nbgrader"):
        raise ValueError(f"engine must be 'auto', 'builtin' or 'nbgrader', got {engine!r}")
    if engine == "nbgrader" and not nbgrader_available():
        raise RuntimeError("engine='nbgrader' needs nbgrader: pip install -e '.[classroom]'")
    output = Path(output) if output is not None else repo_root() / DEFAULT_OUTPUT
    paths = _notebooks(only)
    for p in paths:  # validate every notebook before writing anything
        find_exercises(_read(p), p.name)
    if engine == "nbgrader" or (engine == "auto" and nbgrader_available()):
        return _generate_with_nbgrader(paths, output)
    return [atomic_write(output / p.name, render(student_copy(_read(p), p.name))) for p in paths]


# -- running exercise cells in-process (cheap enough for the unit tests) --------------------

class CellError(RuntimeError):
    """An exception raised by a notebook cell; ``cell`` is its index, ``__cause__`` the original."""

    def __init__(self, name: str, cell: int, err: BaseException):
        super().__init__(f"{name}, cell {cell}: {type(err).__name__}: {err}")
        self.cell = cell


def _namespace() -> dict:
    ns: dict = {"__name__": "__main__"}
    try:
        from IPython.display import display
        ns["display"] = display
    except ImportError:  # pragma: no cover - IPython comes with the notebooks extra
        ns["display"] = print
    return ns


def run_cells(nb, indices, namespace: dict | None = None, name: str = "notebook") -> dict:
    """Execute the code cells ``indices`` of ``nb`` in ``namespace`` (a fresh one by default), in
    the notebooks' folder, with output captured; raise :class:`CellError` at the first failure."""
    ns = _namespace() if namespace is None else namespace
    sink, cwd = io.StringIO(), os.getcwd()
    os.chdir(repo_root() / "notebooks")  # where the kernels run (relative paths in the notebooks)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            for idx in indices:
                cell = nb["cells"][idx]
                if cell.get("cell_type") != "code":
                    continue
                try:
                    exec(compile(_source(cell), f"<{name} cell {idx}>", "exec"), ns)  # noqa: S102 - our notebooks
                except BaseException as err:  # noqa: BLE001 - reported with the cell
                    raise CellError(name, idx, err) from err
    finally:
        os.chdir(cwd)
    return ns


def check_notebook(path: Path) -> dict[int, float]:
    """Run an instructor notebook's setup cells once, then each exercise (solution and checks)
    on its own copy of that namespace; return ``{exercise: seconds}``, raise at a failure."""
    nb, name = _read(path), Path(path).name
    exercises = find_exercises(nb, name)
    if not exercises:
        return {}
    setup = run_cells(nb, range(exercises[0].solution), name=name)
    times = {}
    for ex in exercises:
        t0 = time.perf_counter()
        run_cells(nb, [ex.solution, *ex.checks], dict(setup), name)
        times[ex.number] = time.perf_counter() - t0
    return times


def run_student_copy(nb, name: str = "notebook") -> CellError | None:
    """Run a student copy top to bottom as a student would; return the first failure (``None``
    if every cell runs)."""
    try:
        run_cells(nb, range(len(nb["cells"])), name=name)
    except CellError as err:
        return err
    return None


# -- command line ---------------------------------------------------------------------------

def _cmd_generate(args) -> int:
    if args.output is not None and args.output.exists() and not args.output.is_dir():
        raise NotADirectoryError(f"--output {args.output} is a file; give a folder for the student copies")
    written = generate(args.only, args.output, args.engine)
    root = repo_root()
    for p in written:
        n = len(find_exercises(_read(root / "notebooks" / p.name), p.name))
        shown = p.resolve().relative_to(root) if p.resolve().is_relative_to(root) else p
        print(f"{shown}  ({n} exercise{'s' if n != 1 else ''})")
    return 0


def _cmd_check(args) -> int:
    failed = 0
    for path in _notebooks(args.only):
        try:
            times = check_notebook(path)
        except (CellError, ExerciseError) as err:
            print(f"FAILED {err}")
            failed += 1
            continue
        shown = ", ".join(f"{n}: {t:.1f} s" for n, t in times.items()) or "no exercises"
        print(f"ok     {path.name}  ({shown})")
    return 1 if failed else 0


def _cmd_list(args) -> int:
    for path in _notebooks(args.only):
        nb = _read(path)
        for ex in find_exercises(nb, path.name):
            print(f"{path.name[:2]}  exercise {ex.number}  ({ex.points:g} pt)  {ex.task}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msgnn_lite.classroom", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    gen = sub.add_parser("generate", help="write student copies (the default command)")
    gen.add_argument("--output", type=Path, default=None, help=f"output folder (default: {DEFAULT_OUTPUT}/)")
    gen.add_argument("--engine", choices=("auto", "builtin", "nbgrader"), default="auto",
                     help="auto: nbgrader when installed, else the built-in generator")
    for name, fn, text in (("check", _cmd_check, "run every solution against its check cells"),
                           ("list", _cmd_list, "list the exercises")):
        sub.add_parser(name, help=text).set_defaults(func=fn)
    gen.set_defaults(func=_cmd_generate)
    for p in (gen, *(sub.choices[n] for n in ("check", "list"))):
        p.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers, e.g. --only 00 05")
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in (*sub.choices, "-h", "--help"):
        argv = ["generate", *argv]  # generate is the default command
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    return args.func(args)


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main, "python -m msgnn_lite.classroom"))
