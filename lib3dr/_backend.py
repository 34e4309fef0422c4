"""Which implementations of the kernels are available, and which one a call uses.

lib3dr implements every kernel three times: ``"torch"`` (pure PyTorch, the readable reference),
``"cpu"`` (multi-threaded C++ in ``lib3dr._C``) and ``"cuda"`` (CUDA kernels in ``lib3dr._C``,
present when the extension was built against a CUDA build of torch).
"""
import warnings

import torch

try:
    from lib3dr import _C
    _IMPORT_ERROR = None
except ImportError as error:  # the package still works, on the reference implementation
    _C = None
    _IMPORT_ERROR = error

_warned = False

BUILD_HINT = (
    "Build it with `make test` (or `pip install --no-build-isolation -e .` in an environment "
    "that has torch); until then lib3dr uses its pure-PyTorch implementations, which are slower."
)


def _warn_once():
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"lib3dr._C could not be imported ({_IMPORT_ERROR}). {BUILD_HINT}", stacklevel=3)


def backends():
    """The implementations available in this installation: a subset of ``["torch", "cpu", "cuda"]``."""
    names = ["torch"]
    if _C is not None:
        names.append("cpu")
        if _C.has_cuda() and torch.cuda.is_available():
            names.append("cuda")
    return names


def resolve(backend, device):
    """The backend a call on tensors of ``device`` runs with.

    ``"auto"`` picks ``"cuda"`` for CUDA tensors, else ``"cpu"`` when the extension is built,
    else ``"torch"``. An explicit choice that cannot run on ``device`` raises ``ValueError``.
    """
    device = torch.device(device)
    available = backends()
    if backend == "auto":
        if _C is None:
            _warn_once()
            return "torch"
        if device.type == "cuda":
            return "cuda" if "cuda" in available else "torch"
        return "cpu"
    if backend not in ("torch", "cpu", "cuda"):
        raise ValueError(f"backend must be 'auto', 'torch', 'cpu' or 'cuda', got {backend!r}")
    if backend not in available:
        reason = f" ({_IMPORT_ERROR})" if _C is None else ""
        raise ValueError(f"backend {backend!r} is not available here{reason}; available: {available}")
    if backend != "torch" and backend != device.type:
        raise ValueError(f"backend {backend!r} cannot run on tensors on {device}")
    return backend
