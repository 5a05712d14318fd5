"""msgnn-lite: efficient and scalable GNN training, in small readable pure-PyTorch modules.

Each technique lives in its own module and is taught in a numbered notebook:
``data`` (datasets, CSBM graphs), ``sparse`` (the fast CSR propagation path),
``models`` (GCN, GraphSAGE), ``train`` (the training loop), ``memory``
(activation-memory accounting), ``plotting`` and ``results`` (figures and the
paper-vs-ours records), and ``run_notebooks`` (the papermill pipeline).
"""
__version__ = "0.1.0"

from .utils import resolve_device, seed_everything  # noqa: E402,F401

import warnings as _warnings

# torch warns on every CSR construction; the fast path uses CSR on purpose.
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
_warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled", category=UserWarning)
