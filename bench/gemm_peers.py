"""The LSTM step's matrix products at 65/256/200/64 (batch 64, H 256, 4H 1024): numpy's BLAS
against torch's, one thread, CPU microseconds per product (issue 22, stop 40).

Run ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/gemm_peers.py``
where torch imports (it is optional, never a dependency).  The numbers are the BLAS libraries'
(numpy's OpenBLAS, torch's MKL), not the engine's: the engine's replayed LSTM makes, per step,
the forward's ``h @ W``, the backward's ``g @ W.T`` and its share of ``W``'s gradient summed over
chunks of steps (``tinygraph.tape.sum_deferred``; here 8 steps stacked, per step).
"""

import time

import numpy as np

try:
    import torch
except ImportError:                     # pragma: no cover - the peers are optional
    torch = None

BATCH, HIDDEN, CHUNK = 64, 256, 8


def products(dtype, rng):
    """name -> a call making one product (or one chunk of CHUNK steps' products)."""
    w = rng.standard_normal((HIDDEN, 4 * HIDDEN)).astype(dtype)     # the engine's h @ W
    w_rows = np.ascontiguousarray(w.T)                               # torch's (4H, H) weight
    h = rng.standard_normal((BATCH, HIDDEN)).astype(dtype)
    g = rng.standard_normal((BATCH, 4 * HIDDEN)).astype(dtype)
    hs = rng.standard_normal((BATCH * CHUNK, HIDDEN)).astype(dtype)
    gs = rng.standard_normal((BATCH * CHUNK, 4 * HIDDEN)).astype(dtype)
    calls = {
        "numpy forward h @ W": lambda: np.dot(h, w),
        "numpy backward g @ W.T": lambda: np.dot(g, w.T),
        f"numpy W's gradient, {CHUNK} steps stacked": lambda: np.dot(hs.T, gs),
    }
    if torch is not None:
        tw, th, tg = (torch.from_numpy(a) for a in (w_rows, h, g))
        ths, tgs = torch.from_numpy(hs), torch.from_numpy(gs)
        calls.update({
            "torch forward h @ W_hh.t()": lambda: torch.mm(th, tw.t()),
            "torch backward g @ W_hh": lambda: torch.mm(tg, tw),
            f"torch W's gradient, {CHUNK} steps stacked": lambda: torch.mm(tgs.t(), ths),
        })
    return calls


def main(rounds=3, calls=100):
    if torch is not None:
        torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        times = {}
        for _ in range(rounds):                      # the contenders interleaved, round by round
            for name, call in products(dtype, rng).items():
                start = time.process_time()
                for _ in range(calls):
                    call()
                times.setdefault(name, []).append((time.process_time() - start) / calls * 1e6)
        print(f"{np.dtype(dtype).name}, us per product (each round):")
        for name, us in times.items():
            print(f"  {name:<38} {' '.join(f'{t:7.0f}' for t in us)}")


if __name__ == "__main__":
    main()
