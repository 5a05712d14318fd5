"""The package's layers (CONTRIBUTING.md, "Architecture"): a module imports only from its own
layer or the layers below, and nothing in the library imports the command line (bench)."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "msgnn_lite"
LAYERS = {
    0: {"utils", "checks", "memory", "sparse", "data", "results", "plotting", "cli", "settings"},
    1: {"models", "train", "loader", "partition", "history", "reorder", "coarsening", "ppr"},
    2: {"saint", "gas", "vrgcn", "ibmb", "multiscale", "revgnn", "deq", "precompute", "distill", "quant",
        "distributed", "diagnostics"},
    3: {"compare_all"},
    4: {"bench", "report", "run_notebooks", "notebook", "classroom", "__init__", "__main__"},
}
LAYER_OF = {m: k for k, ms in LAYERS.items() for m in ms}


def _imports(path: Path) -> set[str]:
    """The msgnn_lite modules a file imports (relative or absolute), anywhere in the file."""
    out = set()
    pkg_depth = len(path.relative_to(PKG).parts) - 1  # 0 for msgnn_lite/x.py, 1 for msgnn_lite/bench/x.py
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                if node.level - 1 > pkg_depth:
                    continue
                base = list(path.relative_to(PKG).parts[:-1])[: pkg_depth - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts[0]] if parts else [a.name for a in node.names]
                out.update(names)
            elif node.module and node.module.startswith("msgnn_lite."):
                out.add(node.module.split(".")[1])
            elif node.module == "msgnn_lite":
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("msgnn_lite."))
    return out


def _library_modules():
    return sorted(p for p in PKG.glob("*.py") if p.stem not in ("__init__", "__main__"))


def test_every_module_has_a_layer():
    missing = [p.stem for p in _library_modules() if p.stem not in LAYER_OF]
    assert not missing, f"add {missing} to a layer in CONTRIBUTING.md and tests/test_architecture.py"


@pytest.mark.parametrize("path", _library_modules(), ids=lambda p: p.stem)
def test_imports_respect_the_layers(path):
    mine = LAYER_OF[path.stem]
    bad = {m: LAYER_OF.get(m) for m in _imports(path) - {path.stem}
           if m in LAYER_OF and LAYER_OF[m] > mine and m != "bench"}
    assert not bad, f"{path.stem} (layer {mine}) imports higher layers: {bad}"
    if mine < 4:
        assert "bench" not in _imports(path), f"{path.stem} imports the command line (msgnn_lite.bench)"
