"""Shared test helpers: an independent central finite-difference gradient, and the order.

``numeric_grad`` is written here without any tinygraph code, so the engine's
own ``gradcheck`` is not its own oracle.

``TINYGRAPH_TEST_ORDER=reverse`` runs the collected tests last to first (``.ci/run`` does
once): no test may depend on what another ran before it.
"""

import os
import shutil

import numpy as np
import pytest

ORDER_VARIABLE = "TINYGRAPH_TEST_ORDER"


def pytest_collection_modifyitems(config, items):
    order = os.environ.get(ORDER_VARIABLE, "")
    if order == "reverse":
        items.reverse()
    elif order:
        raise pytest.UsageError(f"{ORDER_VARIABLE} must be 'reverse' or unset, got {order!r}")


def agree_with_torch(torch, cases, x, rtol, atol):
    """Each case ``name -> (tinygraph function, torch function)`` of a float64 array ``x``: the
    values and the gradients of x (from a backward of ones) equal torch's."""
    import tinygraph as tg
    for name, (tg_fn, torch_fn) in cases.items():
        t = tg.tensor(x, requires_grad=True)
        out = tg_fn(t)
        out.backward(np.ones(out.shape))
        tt = torch.tensor(x, requires_grad=True)
        ref = torch_fn(tt)
        ref.backward(torch.ones_like(ref))
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


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


def _browser_missing():
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401 - only whether it imports
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if shutil.which("chromium") is None:
        return "no Chromium found on PATH (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    """The system's Chromium driven by Playwright.  Without it the test is skipped, saying why;
    under CI (CI=true) that skip is an error, so CI never passes without the browser tests."""
    reason = _browser_missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=["--no-sandbox"])
        yield chromium
        chromium.close()
