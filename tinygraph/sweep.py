"""The order in which ``backward`` visits a graph, for tools that replay it (read only)."""

from .errors import BackwardError
from .tensor import _sweep_order


def sweep_order(root):
    """The nodes behind ``root`` that require grad, in the order ``backward`` visits them.

    Each node comes after every node that uses it, so its gradient is complete when it is
    visited: ``root`` first, the leaves last.  Nothing is computed or changed (the graph can
    still be back-propagated); raises GraphFreedError if part of it was freed.

    Returns
    -------
    list of Tensor
    """
    if not root.requires_grad:
        raise BackwardError("sweep_order: this tensor does not require grad (backward would "
                            "visit nothing)")
    return _sweep_order(root)
