"""Classroom exercises: solutions pass their checks, student copies stop at exercise 1 with the
scaffold's message, no solution text leaks, and the generator is idempotent.

The exercise cells run in this process (``msgnn_lite.classroom.run_cells``), after each
notebook's setup cells (everything before its first exercise): a few seconds per notebook.
"""
from __future__ import annotations

import json

import pytest

from msgnn_lite import classroom
from msgnn_lite.classroom import (BEGIN_HIDDEN, BEGIN_SOLUTION, END_SOLUTION, CellError, ExerciseError,
                                  find_exercises, generate, render, student_copy)
from msgnn_lite.run_notebooks import discover
from msgnn_lite.utils import repo_root

NOTEBOOKS = discover(repo_root() / "notebooks")
WITH_EXERCISES = [p for p in NOTEBOOKS if find_exercises(json.loads(p.read_text()), p.name)]


@pytest.fixture(autouse=True)
def _quiet_env(tmp_path, monkeypatch):
    """Figures and results away from the repository, no progress bars."""
    monkeypatch.setenv("MSGNN_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("MSGNN_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MSGNN_PROGRESS", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _solution_lines(nb) -> set[str]:
    """Stripped lines inside solution regions that appear nowhere else in the instructor notebook."""
    inside, outside = set(), set()
    for cell in nb["cells"]:
        lines = classroom._source(cell).splitlines()
        regions = classroom._regions(lines, BEGIN_SOLUTION, END_SOLUTION, "cell") if cell["cell_type"] == "code" else []
        in_region = {i for a, b in regions for i in range(a, b + 1)}
        for i, line in enumerate(lines):
            (inside if i in in_region else outside).add(line.strip())
    return {line for line in inside - outside if line and not line.startswith("###")}


def test_every_notebook_has_two_to_four_exercises_each_with_points():
    assert len(WITH_EXERCISES) >= 8
    for path in WITH_EXERCISES:
        exercises = find_exercises(_load(path), path.name)
        assert 2 <= len(exercises) <= 4, path.name
        assert [ex.number for ex in exercises] == list(range(1, len(exercises) + 1))
        assert all(ex.points > 0 and ex.task for ex in exercises), path.name


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name[:2])
def test_solutions_pass_and_student_copy_stops_at_exercise_1(path, data_root, monkeypatch):
    monkeypatch.setenv("MSGNN_DATA", str(data_root))
    nb = _load(path)
    # every solution passes its own check, each exercise run on the setup cells alone
    times = classroom.check_notebook(path)
    assert sorted(times) == [ex.number for ex in find_exercises(nb, path.name)]
    # the student copy runs its setup and fails in exercise 1 with the scaffold's message
    copy = student_copy(nb, path.name)
    first = find_exercises(nb, path.name)[0]
    err = classroom.run_student_copy(copy, path.name)
    assert err is not None, f"{path.name}: the student copy ran through"
    assert err.cell in (first.solution, *first.checks), f"{path.name}: failed in cell {err.cell}, not in exercise 1"
    assert isinstance(err.__cause__, NotImplementedError)
    assert str(err.__cause__).startswith("exercise 1: your turn — ")
    # the scaffold, not the check, is what fails: every check fails the same way for every exercise
    setup = classroom.run_cells(copy, range(first.solution), name=path.name)
    for ex in find_exercises(nb, path.name):
        with pytest.raises(CellError, match=f"exercise {ex.number}: your turn"):
            classroom.run_cells(copy, [ex.solution, *ex.checks], dict(setup), path.name)


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name[:2])
def test_no_solution_text_or_output_leaks(path):
    nb = _load(path)
    text = render(student_copy(nb, path.name))
    for marker in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN):
        assert marker not in text
    copy = json.loads(text)
    lines = {line.strip() for cell in copy["cells"] for line in classroom._source(cell).splitlines()}
    assert not (_solution_lines(nb) & lines), f"{path.name}: solution lines left in the student copy"
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in copy["cells"] if c["cell_type"] == "code")
    assert len(copy["cells"]) == len(nb["cells"])  # nothing else is added or dropped


def test_generator_is_idempotent_and_writes_every_notebook(tmp_path):
    first = generate(output=tmp_path / "a", engine="builtin")
    again = generate(output=tmp_path / "a", engine="builtin")
    other = generate(output=tmp_path / "b", engine="builtin")
    assert [p.name for p in first] == [p.name for p in NOTEBOOKS]
    for a, b, c in zip(first, again, other):
        assert a.read_bytes() == b.read_bytes() == c.read_bytes()
    assert not list((tmp_path / "a").glob("*.tmp*"))


def test_cli_generates_with_the_builtin_engine(tmp_path, capsys):
    assert classroom.main(["--only", "00", "--engine", "builtin", "--output", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [NOTEBOOKS[0].name]
    assert "2 exercises" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        classroom.main(["generate", "--engine", "nbgrader-please"])


def _nb(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(src, **meta):
    return {"cell_type": "code", "metadata": meta, "source": src, "outputs": [], "execution_count": None}


SOL = {"grade": False, "solution": True, "grade_id": "ex1_solution"}
CHK = {"grade": True, "solution": False, "grade_id": "ex1_check", "points": 1}


def test_scaffold_keeps_indentation_and_hidden_tests_go():
    nb = _nb(_code("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n",
                   nbgrader=SOL, classroom={"exercise": 1, "task": "add y"}),
             _code("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 3\n### END HIDDEN TESTS\nprint('ok')",
                   nbgrader=CHK, classroom={"exercise": 1}))
    out = student_copy(nb)
    assert out["cells"][0]["source"] == ("def f(x):\n    y = 1\n    # YOUR CODE HERE (exercise 1)\n"
                                         "    raise NotImplementedError('exercise 1: your turn — add y')")
    assert out["cells"][1]["source"] == "assert f(1) == 2\nprint('ok')"
    assert nb["cells"][0]["source"].count(BEGIN_SOLUTION) == 1  # the instructor notebook is not touched
    ns = classroom.run_cells(nb, [0, 1])
    assert ns["f"](5) == 6
    with pytest.raises(CellError, match="exercise 1: your turn — add y"):
        classroom.run_cells(out, [0, 1])


@pytest.mark.parametrize("cells, message", [
    ((_code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),), "without nbgrader"),
    ((_code("x = 1", nbgrader=SOL, classroom={"exercise": 1, "task": "t"}), _code("", nbgrader=CHK,
                                                                                  classroom={"exercise": 1})),
     "needs a '### BEGIN SOLUTION'"),
    ((_code("### BEGIN SOLUTION\nx = 1", nbgrader=SOL, classroom={"exercise": 1, "task": "t"}),), "never closed"),
    ((_code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", nbgrader=SOL, classroom={"exercise": 1, "task": "t"}),),
     "has no check cell"),
    ((_code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", nbgrader=SOL, classroom={"exercise": 2, "task": "t"}),),
     "out of order"),
    ((_code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", nbgrader=SOL, classroom={"exercise": 1}),),
     "task"),
    ((_code("assert True", nbgrader=CHK, classroom={"exercise": 1}),), "must follow its solution"),
])
def test_malformed_exercises_are_refused_with_a_clear_error(cells, message):
    with pytest.raises(ExerciseError, match=message):
        student_copy(_nb(*cells))


def test_engine_is_checked():
    with pytest.raises(ValueError, match="engine must be"):
        generate(engine="magic")
    if not classroom.nbgrader_available():
        with pytest.raises(RuntimeError, match="classroom"):
            generate(engine="nbgrader")


@pytest.mark.skipif(not classroom.nbgrader_available(), reason="nbgrader is not installed (optional extra 'classroom')")
def test_nbgrader_engine_removes_solutions_and_hidden_tests(tmp_path):
    (out,) = generate(only=["00"], output=tmp_path, engine="nbgrader")
    text = out.read_text(encoding="utf-8")
    assert BEGIN_SOLUTION not in text and BEGIN_HIDDEN not in text
    assert "NotImplementedError" in text
