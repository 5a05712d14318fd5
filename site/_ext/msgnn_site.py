"""The course website's one Sphinx extension (configured in site/conf.py).

* the sidebar: README is the landing page, and a hidden table of contents in course order
  (guide, notebooks 00-13, report, reference) is appended to it at read time, so that the
  README on GitHub stays as it is;
* every notebook page gets a "Run it yourself" box after its learning objectives: the
  JupyterLab and papermill commands and a table of its ``parameters`` cell;
* the reproduction report's verdict cells get a class per verdict kind (coloured by
  site/_static/msgnn.css);
* index.html leads to the landing page (README), for static hosts.
"""
from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

from docutils import nodes

NOTEBOOK = re.compile(r"^notebooks/(\d\d)_[^/]+$")
REPORT_DOC = "docs/reproduction_report"


def course_order(srcdir: Path) -> list[str]:
    """The notebook docnames, 00 to 13, in course order (their number)."""
    return [f"notebooks/{p.stem}" for p in sorted((srcdir / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def toctree(srcdir: Path) -> str:
    def block(caption: str, docs: list[str]) -> str:
        return "\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(docs) + "\n```\n"

    return (block("Start here", ["docs/course"]) + block("Notebooks", course_order(srcdir))
            + block("Results", ["docs/reproduction_report", "docs/comparison/README", "docs/feature_study",
                                "docs/multiscale_large/README", "docs/gas_table/README",
                                "docs/gpu", "papers"])
            + block("Reference", ["docs/api", "CONTRIBUTING"]))


def parameters(cell_source: str) -> list[tuple[str, str, str]]:
    """``(name, default, comment)`` for each top-level ``name = value`` of a parameters cell; the
    comment is the one at the end of its line, else a comment line right above it."""
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(cell_source).readline) if tok.type == tokenize.COMMENT}
    lines = cell_source.splitlines()
    above = {n + 1: text for n, text in comments.items() if lines[n - 1].lstrip().startswith("#")}
    return [(stmt.targets[0].id, ast.get_source_segment(cell_source, stmt.value),
             comments.get(stmt.lineno) or above.get(stmt.lineno, ""))
            for stmt in ast.parse(cell_source).body
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)]


COMMON = {  # what the parameters every notebook has set, where its cell does not say
    "profile": '"default": minutes on a CPU; "full": the papers\' sizes, for a GPU; "smoke": toy sizes, for tests',
    "device": '"auto" (a GPU when there is one), "cpu", "cuda", "cuda:1", "mps"',
    "dataset": "the graph of every section on a real graph (a name `msgnn_lite.data.load_dataset` knows, or "
               "`csbm:nodes=...`)",
    "seed": "the first random seed",
    "epochs": "training epochs",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def run_it_yourself(path: str, nb: dict) -> str:
    """The MyST markdown of a notebook page's "Run it yourself" box."""
    name = Path(path).name
    number = name[:2]
    params = next(("".join(c["source"]) for c in nb["cells"]
                   if "parameters" in c.get("metadata", {}).get("tags", [])), "")
    rows = "\n".join(f"| `{n}` | `{_cell(v)}` | {_cell(c or COMMON.get(n, ''))} |" for n, v, c in parameters(params))
    return f"""
:::{{admonition}} Run it yourself
:class: tip run-it-yourself

This page shows the notebook as it ran with the `default` profile on a 2-core CPU.

**In JupyterLab**: `make install` once, then `.venv/bin/jupyter lab notebooks/{name}` and run the cells in
order (or download the notebook with the button at the top of the page).

**In batch** with papermill, into `runs/default/` and the reproduction report (add `DEVICE=cuda` for a GPU,
`PROFILE=full` for the papers' sizes), or on its own with any parameter changed:

```bash
make reproduce ONLY={number}
.venv/bin/papermill notebooks/{name} out.ipynb -p device cuda
```

**Parameters** (the cell tagged `parameters`; papermill's `-p name value` overrides one):

| name | default | what it sets |
|---|---|---|
{rows}
:::
"""


def on_source_read(app, docname: str, source: list[str]) -> None:
    srcdir = Path(app.srcdir)
    if docname == app.config.root_doc:
        source[0] += "\n" + toctree(srcdir)
    elif NOTEBOOK.match(docname):
        nb = json.loads(source[0])
        box = {"cell_type": "markdown", "id": "run-it-yourself", "metadata": {}, "source": run_it_yourself(docname + ".ipynb", nb)}
        nb["cells"].insert(1, box)  # after the title and learning objectives
        source[0] = json.dumps(nb)


def on_doctree_resolved(app, doctree, docname: str) -> None:
    if docname != REPORT_DOC:
        return
    from msgnn_lite.results import VERDICTS, verdict_kind

    for entry in doctree.findall(nodes.entry):
        kind = verdict_kind(entry.astext().strip())
        if kind in VERDICTS:
            entry["classes"] += ["verdict", "verdict-" + kind.replace(" ", "-")]


REDIRECT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>msgnn-lite</title>
<meta http-equiv="refresh" content="0; url={target}"><link rel="canonical" href="{target}">
<link rel="icon" href="_static/favicon.svg" type="image/svg+xml"></head>
<body><p><a href="{target}">msgnn-lite: the course</a></p></body></html>
"""


def on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    # README is the landing page; static hosts serve index.html
    (Path(app.outdir) / "index.html").write_text(REDIRECT.format(target=app.config.root_doc + ".html"))


def setup(app):
    app.connect("source-read", on_source_read)
    app.connect("doctree-resolved", on_doctree_resolved)
    app.connect("build-finished", on_build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
