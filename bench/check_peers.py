"""Check that every importable peer of bench/peers.py computes what bench/numpy_elman.per_step does.

Run ``python bench/check_peers.py`` from the repository root (with torch and/or autograd
installed; they are not project dependencies, so this is a script, not a test).  On a tiny
config with nonzero biases it compares each peer's loss and gradients with the hand-written
per-step BPTT, in float64 and float32, prints one line per peer and dtype, and exits with
status 1 if any differs by more than rounding (or if no peer is importable).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import numpy_elman as ne   # noqa: E402
from bench import peers               # noqa: E402

TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}   # relative, on the loss and on each gradient


def check(name, form, dtype, n_vocab=7, n_hidden=5, steps=6, batch=3):
    """Largest relative difference of ``form``'s loss and gradients from ``ne.per_step``."""
    params = ne.init_params(n_vocab, n_hidden, seed=0, dtype=dtype)
    params["b"] += dtype(0.1)
    params["c"] -= dtype(0.2)
    xs, ys = ne.make_data(n_vocab, steps, batch, seed=0)
    exact = {k: v.astype(np.float64) for k, v in params.items()}
    expected_loss, expected = ne.per_step(exact, xs, ys)
    run = form(params, xs, ys)
    run()                                  # a second call must not accumulate gradients
    loss, grads = run()
    worst = abs(loss - expected_loss) / abs(expected_loss)
    for k, g in expected.items():
        worst = max(worst, np.max(np.abs(np.asarray(grads[k]) - g)) / np.max(np.abs(g)))
        if np.asarray(grads[k]).dtype != dtype:
            raise SystemExit(f"{name}: gradient of {k} is {np.asarray(grads[k]).dtype}, not {dtype}")
    return worst


def main():
    failed, ran = False, 0
    for name, (module, form) in peers.PEERS.items():
        if not peers.importable(module):
            print(f"{name}: {module} not importable, skipped")
            continue
        for dtype, tol in TOLERANCE.items():
            worst = check(name, form, dtype)
            ok = worst <= tol
            failed |= not ok
            ran += 1
            print(f"{name} {dtype.__name__}: largest relative difference {worst:.1e} "
                  f"({'ok' if ok else 'FAILED'}, tolerance {tol:.0e})")
    if failed or not ran:
        sys.exit(1)


if __name__ == "__main__":
    main()
