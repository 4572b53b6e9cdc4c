"""Shared test helpers: an independent central finite-difference gradient, and the order.

``numeric_grad`` is written here without any tinygraph code, so the engine's
own ``gradcheck`` is not its own oracle.

``TINYGRAPH_TEST_ORDER=reverse`` runs the collected tests last to first (``.ci/run`` does
once): no test may depend on what another ran before it.
"""

import os

import numpy as np
import pytest

ORDER_VARIABLE = "TINYGRAPH_TEST_ORDER"


def pytest_collection_modifyitems(config, items):
    order = os.environ.get(ORDER_VARIABLE, "")
    if order == "reverse":
        items.reverse()
    elif order:
        raise pytest.UsageError(f"{ORDER_VARIABLE} must be 'reverse' or unset, got {order!r}")


def central_differences(f, arrays, eps=1e-6):
    """d f / d arrays[i] for every i by central differences; ``f(*arrays) -> float``."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = f(*arrays)
            a[idx] = old - eps
            down = f(*arrays)
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.fixture
def numeric_grad():
    return central_differences
