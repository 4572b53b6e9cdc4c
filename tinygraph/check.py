"""Gradient checking against central finite differences."""

import numpy as np

from .errors import GradcheckError
from .tensor import Tensor, grad, no_grad


def gradcheck(fn, inputs, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0):
    """Compare backprop with central finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> Tensor``.  A non-scalar output is checked through a fixed
        random projection ``sum(r * fn(*inputs))``, which tests the whole vjp.
    inputs : sequence of Tensor
        Those with ``requires_grad`` are checked (use float64 for tight tolerances).

    Returns True, or raises GradcheckError naming the worst entry.
    """
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise GradcheckError("gradcheck: no input requires grad")
    out = fn(*inputs)
    r = np.random.default_rng(seed).standard_normal(out.shape)

    def objective():
        with no_grad():
            return float(np.sum(r * fn(*inputs).data))

    analytic = grad(out, [inputs[i] for i in checked], grad=r)
    worst = None
    for i, a in zip(checked, analytic):
        x = inputs[i].data
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + eps
            up = objective()
            x[idx] = old - eps
            down = objective()
            x[idx] = old
            numeric = (up - down) / (2 * eps)
            err = abs(a[idx] - numeric)
            excess = err - (atol + rtol * abs(numeric))
            if excess > 0 and (worst is None or excess > worst[0]):
                worst = (excess, i, idx, a[idx], numeric)
    if worst is not None:
        _, i, idx, a, numeric = worst
        name = inputs[i].name or f"input {i}"
        raise GradcheckError(f"gradcheck: {name} entry {idx}: backprop {a!r} vs finite "
                             f"differences {numeric!r} (abs error {abs(a - numeric):.3g})")
    return True
