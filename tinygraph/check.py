"""Gradient checking against central finite differences."""

import numpy as np

from .errors import GradcheckError
from .tensor import Tensor, grad, no_grad

_FLOAT64 = {"eps": 1e-6, "rtol": 1e-5, "atol": 1e-8}
# float32 has 7 digits: the best central-difference step is about eps_machine ** (1/3) and
# the difference itself is then good to about 1e-3 relative, so that is what can be checked.
_FLOAT32 = {"eps": 5e-3, "rtol": 2e-2, "atol": 1e-3}


def gradcheck(fn, inputs, eps=None, rtol=None, atol=None, seed=0):
    """Compare backprop with central finite differences.

    Parameters
    ----------
    fn : callable
        ``fn(*inputs) -> Tensor``.  A non-scalar output is checked through a fixed
        random projection ``sum(r * fn(*inputs))``, which tests the whole vjp.
    inputs : sequence of Tensor
        Those with ``requires_grad`` are checked.
    eps, rtol, atol : float, optional
        Step and tolerances.  Defaults: 1e-6, 1e-5, 1e-8 when every checked input is
        float64; with a float32 (or float16) input, 5e-3, 2e-2, 1e-3, as tight as finite
        differences in float32 can go -- use float64 inputs for an exact check.  A failure
        with tighter tolerances on float32 inputs says so, as does any failure on float16
        inputs (3 digits: finite differences cannot check them, whatever the tolerances).

    Returns True, or raises GradcheckError naming the worst entry; a NaN or infinite
    gradient or finite difference fails (nothing was checked there).  The inputs are left as
    they were, also when ``fn`` raises on a perturbed input.
    """
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise GradcheckError("gradcheck: no input requires grad")
    coarse = [inputs[i].dtype for i in checked if inputs[i].dtype.itemsize < 8]
    defaults = _FLOAT32 if coarse else _FLOAT64
    eps = defaults["eps"] if eps is None else eps
    rtol = defaults["rtol"] if rtol is None else rtol
    atol = defaults["atol"] if atol is None else atol
    out = fn(*inputs)
    r = np.random.default_rng(seed).standard_normal(out.shape)

    def objective():
        with no_grad():
            return float(np.sum(r * fn(*inputs)._data, dtype=np.float64))

    analytic = grad(out, [inputs[i] for i in checked], grad=r)
    worst = None
    for i, a in zip(checked, analytic):
        x = inputs[i]._data
        for idx in np.ndindex(x.shape):
            old = x[idx]
            try:     # the input is restored whatever fn does (raises, or is interrupted)
                x[idx] = old + eps
                up, step_up = objective(), float(x[idx])
                x[idx] = old - eps
                down, step_down = objective(), float(x[idx])
            finally:
                x[idx] = old
            numeric = (up - down) / (step_up - step_down)   # the step as stored in x's dtype
            err = abs(a[idx] - numeric)
            excess = err - (atol + rtol * abs(numeric))
            if not np.isfinite(excess):    # a NaN (or inf) on either side: nothing agrees, it
                excess = np.inf            # fails (a NaN compared as > 0 is False: it passed)
            if excess > 0 and (worst is None or excess > worst[0]):
                worst = (excess, i, idx, a[idx], numeric)
    if worst is not None:
        _, i, idx, a, numeric = worst
        name = inputs[i].name or f"input {i}"
        hint = ""
        if any(dtype.itemsize < 4 for dtype in coarse):    # a correct float16 gradient fails
            hint = (f"; the inputs are {min(coarse, key=lambda d: d.itemsize)}, too coarse for "
                    "finite differences (about 3 digits): use float64 inputs to check the "
                    "gradient")
        elif coarse and (rtol < _FLOAT32["rtol"] or atol < _FLOAT32["atol"] or eps < _FLOAT32["eps"] / 10):
            hint = (f"; the inputs are {coarse[0]}, too coarse for finite differences at "
                    f"eps={eps:g}, rtol={rtol:g}, atol={atol:g}: use float64 inputs, or the "
                    "defaults, which adapt to float32")
        raise GradcheckError(f"gradcheck: {name} entry {idx}: backprop {float(a)!r} vs finite "
                             f"differences {float(numeric)!r} (abs error "
                             f"{abs(a - numeric):.3g}){hint}")
    return True
