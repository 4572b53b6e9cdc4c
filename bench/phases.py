"""Where one ``ElmanRNN.loss(xs, ys).backward()`` spends its time, phase by phase (issue 22).

Run ``python bench/phases.py`` from the repository root (``--config 65/100/25/1``, ``--calls``).
A statistical profile: a CPU-time timer (``signal.ITIMER_PROF``, every 100 us of this
process's CPU time) interrupts the calls, and each sample counts for the innermost phase on
the stack (``PHASES``: functions of the unroll, the replay and backward); ``backward: engine
sweep`` is further split by the op of the node the sweep was at.  Microseconds per call are
the samples' shares of the measured CPU time per call.  Batched numpy
(``bench/numpy_elman.batched``) is timed after, in the same process, for the ratio.  Unix
only (SIGPROF); single-threaded BLAS as ``bench/run.py``.
"""

import argparse
import collections
import os
import signal
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import rnn                              # noqa: E402
from bench import numpy_elman as ne     # noqa: E402
from bench.run import parse_config      # noqa: E402

_LOOP_F, _LOOP_B = "<tinygraph.tape forward>", "<tinygraph.tape backward>"

PHASES = {      # (file name, function) -> phase; the innermost one on the stack counts
    ("phases.py", "call"): "glue (p.grad = None, the calls)",
    ("core.py", "loss"): "glue (loss, run, Plan, Unrolled)",
    ("models.py", "run"): "glue (loss, run, Plan, Unrolled)",
    ("models.py", "_sequence"): "argument checks",
    ("models.py", "_targets"): "argument checks",
    ("checks.py", "states"): "argument checks",
    ("checks.py", "batch_size"): "argument checks",
    ("core.py", "_check_classes"): "argument checks",
    ("core.py", "_check_time_major"): "argument checks",
    ("core.py", "unroll"): "unroll setup (scopes, transposes, initial state)",
    ("core.py", "_batched"): "unroll setup (scopes, transposes, initial state)",
    ("models.py", "input_map"): "input map (U^T + b, take)",
    ("core.py", "run_steps"): "steps 1-3 as engine ops (2 of them recorded)",
    ("core.py", "_program"): "programs of the two recordings, compared",
    ("replay.py", "why_not"): "programs of the two recordings, compared",
    ("core.py", "_replayed"): "replay node: set-up, node, Steps (forward)",
    (_LOOP_F, "forward"): "replayed loop, forward",
    ("core.py", "_batched_result"): "stack, readout addmm, cross-entropy (forward)",
    ("tensor.py", "backward"): "backward: engine sweep",
    ("replay.py", "grads"): "backward: replay node set-up",
    (_LOOP_B, "backward"): "backward: replayed loop",
    ("tape.py", "sum_deferred"): "backward: W's a^T g, one product per chunk of steps",
}


def profile(config, calls, interval=1e-4):
    """(CPU us per loss + backward, batched numpy us, phase -> us, node op -> us)."""
    n_vocab, n_hidden, steps, batch = parse_config(config)
    model = rnn.ElmanRNN(n_vocab, n_hidden, n_vocab, seed=0)
    xs, ys = ne.make_data(n_vocab, steps, batch, seed=0)
    params = model.parameters()

    def call():
        for p in params:
            p.grad = None
        model.loss(xs, ys).backward()

    phases, ops, total = collections.Counter(), collections.Counter(), [0]

    def sample(signum, frame):
        total[0] += 1
        phase = node = None
        while frame is not None:
            code = frame.f_code
            name = code.co_filename if code.co_filename.startswith("<") else \
                os.path.basename(code.co_filename)
            if phase is None:
                phase = PHASES.get((name, code.co_name))
            if node is None and code.co_name == "_backprop":
                at = frame.f_locals.get("node")
                node = "(sort)" if at is None else (at.op or "(leaves)")
            frame = frame.f_back
        phases[phase or "elsewhere"] += 1
        if phase == "backward: engine sweep":
            ops[node or "(before the sweep)"] += 1

    for _ in range(max(10, calls // 20)):
        call()
    previous = signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    try:
        start = time.process_time()
        for _ in range(calls):
            call()
        per_call = (time.process_time() - start) / calls * 1e6
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, previous)
    params_np = {k: getattr(model, k).data for k in "UWVbc"}
    start = time.process_time()
    for _ in range(calls):
        ne.batched(params_np, xs, ys)
    numpy_us = (time.process_time() - start) / calls * 1e6
    share = per_call / max(total[0], 1)
    return (per_call, numpy_us, {k: v * share for k, v in phases.most_common()},
            {k: v * share for k, v in ops.most_common()})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="65/100/25/1", help="vocab/hidden/steps/batch")
    parser.add_argument("--calls", type=int, default=5000, help="loss + backward calls sampled")
    args = parser.parse_args(argv)
    per_call, numpy_us, phases, ops = profile(args.config, args.calls)
    print(f"ElmanRNN {args.config}, float64, one BLAS thread: {per_call:.0f} us per loss + "
          f"backward (CPU), batched numpy {numpy_us:.0f} us, ratio {per_call / numpy_us:.2f}\n")
    print("| phase | us per call |\n|---|---|")
    for phase, us in phases.items():
        print(f"| {phase} | {us:.1f} |")
    print("\nbackward: engine sweep, by the node it was at: "
          + ", ".join(f"{op} {us:.1f}" for op, us in ops.items()))


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(main)
