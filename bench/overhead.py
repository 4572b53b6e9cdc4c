"""The engine's fixed cost per node: a chain of N identical ops, built and back-propagated,
against the same arithmetic in bare numpy.

overhead per node = (engine time - numpy time) / N, split into creating the node (forward)
and its share of ``backward`` (topological sort, vjps, gradient accumulation).  Run alone with
``python bench/overhead.py`` or as part of ``python bench/run.py --overhead``.
"""

import gc
import os
import sys
import time
import tracemalloc

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


def chain_cost(n=200_000, repeats=3):
    """A chain of ``n`` engine ``mul`` nodes on shape (10,) beside ``n`` bare ``np.multiply`` calls.

    Returns a dict: ``build_us`` and ``numpy_us`` (best µs per op over ``repeats`` rounds, CPU
    time, the collector running as in a user's program), ``ratio`` (build / numpy), ``peak_mib``
    (tracemalloc peak while the chain is built, numpy's arrays included) and ``tracked_per_node``
    (objects the cycle collector tracks per node: counted right after the build, and after one
    full collection, which stops tracking tuples that hold no tracked object).
    """
    rng = np.random.default_rng(0)
    x0, w0 = rng.normal(size=10), 1 + 1e-9 * rng.normal(size=10)
    build, bare = [], []
    for _ in range(repeats):
        x = tg.tensor(x0, requires_grad=True)
        w = tg.tensor(w0, requires_grad=True)
        t0 = time.process_time()
        y = x
        for _ in range(n):
            y = y * w
        build.append(time.process_time() - t0)
        del x, w, y
        t0 = time.process_time()
        z = x0
        for _ in range(n):
            z = np.multiply(z, w0)
        bare.append(time.process_time() - t0)
    gc.collect()
    before = len(gc.get_objects())
    was = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    x = tg.tensor(x0, requires_grad=True)
    w = tg.tensor(w0, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * w
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    fresh = len(gc.get_objects()) - before
    if was:
        gc.enable()
    gc.collect()
    kept = len(gc.get_objects()) - before
    del x, w, y
    return {"build_us": 1e6 * min(build) / n, "numpy_us": 1e6 * min(bare) / n,
            "ratio": min(build) / min(bare), "peak_mib": peak / 2 ** 20,
            "tracked_per_node": (fresh / n, kept / n)}


def settings_chain_objects(n=2000):
    """Objects the cycle collector tracks per node, after one full collection, in a chain of ops
    called with keyword arguments or constants (softmax over an axis, maximum with 0, a sum
    with ``keepdims``, a product with a number, rows taken by index and stacked again): nine nodes per step."""
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    gc.collect()
    before = len(gc.get_objects())
    y = x
    for _ in range(n):
        y = tg.softmax(tg.maximum(y, 0.0) + tg.sum(y, axis=0, keepdims=True) * 0.5, axis=1)
        y = tg.stack([y[0], y[1], y[2]])
    gc.collect()
    tracked = (len(gc.get_objects()) - before) / (9 * n)
    del x, y
    return tracked


def collector_scan(steps=10_000, repeats=5):
    """CPU ms of one full ``gc.collect()`` while the graph of ``ElmanRNN(16, 32, 16).loss`` over
    ``steps`` steps is alive (kept past its unroll, before backward), beside the same collection
    without it; and the objects the collector tracks per step."""
    import rnn
    model = rnn.ElmanRNN(16, 32, 16, seed=0)
    xs = np.random.default_rng(0).integers(0, 16, size=steps)
    gc.collect()
    empty = []
    for _ in range(repeats):
        t0 = time.process_time()
        gc.collect()
        empty.append(time.process_time() - t0)
    before = len(gc.get_objects())
    loss = model.loss(xs, xs)
    gc.collect()
    tracked = len(gc.get_objects()) - before
    full = []
    for _ in range(repeats):
        t0 = time.process_time()
        gc.collect()
        full.append(time.process_time() - t0)
    loss.backward()
    return {"scan_ms": 1e3 * (min(full) - min(empty)), "tracked_per_step": tracked / steps}


def print_node_costs():
    c = chain_cost()
    s = collector_scan()
    k = settings_chain_objects()
    print("\nper-node objects and the cycle collector\n")
    print("| 200,000-op mul chain: build µs/op | np.multiply µs/op | ratio | peak MiB | "
          "tracked objects/node (fresh, after a collection) | same, ops with settings | gc scan of a "
          "kept 10,000-step Elman graph, ms | tracked objects/step |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {c['build_us']:.2f} | {c['numpy_us']:.2f} | {c['ratio']:.1f} | {c['peak_mib']:.0f} | "
          f"{c['tracked_per_node'][0]:.1f}, {c['tracked_per_node'][1]:.1f} | {k:.1f} | {s['scan_ms']:.1f} | "
          f"{s['tracked_per_step']:.1f} |")


def _main():
    print_table()
    print_node_costs()


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(_main, keep_set=True)
