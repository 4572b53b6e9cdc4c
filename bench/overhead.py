"""The engine's fixed cost per node: a chain of N identical ops, built and back-propagated,
against the same arithmetic in bare numpy.

overhead per node = (engine time - numpy time) / N, split into creating the node (forward)
and its share of ``backward`` (topological sort, vjps, gradient accumulation).  Run alone with
``python bench/overhead.py`` or as part of ``python bench/run.py --overhead``.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinygraph as tg  # noqa: E402


def _chain_arrays(kind, rng):
    if kind == "mul (10,)":
        return rng.normal(size=10), 1 + 1e-3 * rng.normal(size=10), np.multiply
    q, _ = np.linalg.qr(rng.normal(size=(100, 100)))
    return rng.normal(size=(100, 100)), q, np.matmul


def _engine(x0, w0, n, op):
    x = tg.tensor(x0, requires_grad=True)
    w = tg.tensor(w0, requires_grad=True)
    t0 = time.process_time()
    y = x
    for _ in range(n):
        y = op(y, w)
    t1 = time.process_time()
    y.backward(np.ones_like(x0))
    return t1 - t0, time.process_time() - t1


def _numpy(x0, w0, n, op):
    t0 = time.process_time()
    ys = [x0]
    for _ in range(n):
        ys.append(op(ys[-1], w0))
    t1 = time.process_time()
    g = np.ones_like(x0)
    gw = np.zeros_like(w0)
    if op is np.multiply:
        for i in reversed(range(n)):
            gw = gw + g * ys[i]
            g = g * w0
    else:
        wt = w0.T
        for i in reversed(range(n)):
            gw = gw + ys[i].T @ g
            g = g @ wt
    return t1 - t0, time.process_time() - t1


def measure(kind, n, repeats):
    """Best µs per node over ``repeats`` rounds: engine (create, backward), numpy (forward, backward).

    Engine and numpy run alternately, timed by process CPU time.  The best round, not the
    median, is taken (as timeit advises for micro-benchmarks): on a shared machine load from
    other processes only ever adds time.
    """
    x0, w0, np_op = _chain_arrays(kind, np.random.default_rng(0))
    tg_op = tg.mul if np_op is np.multiply else tg.matmul
    engine, bare = [], []
    for _ in range(repeats + 1):      # the first round is a warm-up
        engine.append(_engine(x0, w0, n, tg_op))
        bare.append(_numpy(x0, w0, n, np_op))
    return {who: tuple(1e6 * min(r[i] for r in runs[1:]) / n for i in (0, 1))
            for who, runs in (("engine", engine), ("numpy", bare))}


def print_table():
    print("\nper-node cost, µs (best of R rounds of a chain of N ops; overhead = engine - numpy)\n")
    print("| op | N | engine create | engine backward | numpy fwd | numpy bwd | overhead create | "
          "overhead backward | overhead total |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, n, repeats in (("mul (10,)", 2000, 30), ("matmul 100x100", 100, 40)):
        r = measure(kind, n, repeats)
        (ec, eb), (nf, nb) = r["engine"], r["numpy"]
        oc, ob = ec - nf, eb - nb
        print(f"| {kind} | {n} | {ec:.2f} | {eb:.2f} | {nf:.2f} | {nb:.2f} | {oc:.2f} | "
              f"{ob:.2f} | {oc + ob:.2f} |")


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(print_table, keep_set=True)
