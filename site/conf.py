"""Sphinx configuration of the course website (``make site``; see site/README.md).

The source folder is the repository root, so that README, the notebooks, docs/ and papers.md are
read where they live (no copies) and their relative links keep working; only the files named in
``include_patterns`` become pages. The notebooks are rendered from their stored outputs (the
``default`` profile): nothing is executed and nothing is fetched from the internet.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(ROOT))

project = "msgnn-lite"
author = "the msgnn-lite authors"
copyright = "the msgnn-lite authors, MIT licence"
html_title = "msgnn-lite: scalable GNN training, taught and reproduced"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.githubpages",  # writes .nojekyll, so that GitHub Pages serves _static/
    "sphinx-mathjax-offline",  # MathJax 3 served from the build folder: no network needed to render math
    "msgnn_site",  # course order, "run it yourself" boxes, verdict colours (site/_ext)
]

root_doc = "README"
include_patterns = ["README.md", "CONTRIBUTING.md", "papers.md", "docs/*.md", "docs/*/README.md", "docs/api/*.rst",
                    "notebooks/[0-9][0-9]_*.ipynb"]
exclude_patterns = [".venv/**", ".git/**", "runs/**", "site/_build/**", ".cache/**", "classroom/**", ".gpu-kit/**"]

# notebooks: the stored outputs are the content
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath"]
myst_heading_anchors = 3  # README's [Classroom use](#classroom-use) and similar links resolve
suppress_warnings = ["mystnb.unknown_mime_type"]  # widget state of progress bars (no renderer needed offline)

# API reference from the docstrings (docs/api.md)
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "ignore-module-all": True}  # each object once, in its own module
autodoc_inherit_docstrings = False  # not torch's docstrings (autograd.Function.forward's, say)
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_static_path = [str(HERE / "_static")]
html_css_files = ["msgnn.css"]
html_theme_options = {
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
}
html_context = {"default_mode": "light"}  # an explicit mode: the theme logs an error on an empty one
html_favicon = str(HERE / "_static" / "favicon.svg")
html_last_updated_fmt = None
html_show_sourcelink = False  # the download button gives the notebook (.ipynb) itself
