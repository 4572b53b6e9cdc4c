"""The order in which ``backward`` visits a graph, for tools that replay it (read only)."""

from .errors import BackwardError
from .tensor import _on_paths, _sweep_order


def sweep_order(root, inputs=None):
    """The nodes behind ``root`` that require grad, in the order ``backward`` visits them.

    Each node comes after every node that uses it, so its gradient is complete when it is
    visited: ``root`` first, the leaves last.  Nothing is computed or changed (the graph can
    still be back-propagated); raises GraphFreedError if part of it was freed.

    With ``inputs`` (a sequence of Tensors), the nodes ``tg.grad(root, inputs)`` visits: the
    root, the inputs it reaches and the nodes on paths from it to them, in the same order; a
    freed (or changed) part of the graph off those paths is no error, as for ``grad``.

    Returns
    -------
    list of Tensor
    """
    if not root.requires_grad:
        raise BackwardError("sweep_order: this tensor does not require grad (backward would "
                            "visit nothing)")
    if inputs is None:
        return _sweep_order(root, "sweep_order")
    targets = {id(t): None for t in inputs}
    return _on_paths(_sweep_order(root, "sweep_order", targets), targets)
