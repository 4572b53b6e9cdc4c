"""Speed of every design's loss + backward beside a hand-written numpy forward + BPTT of the same
equations (issue 12): one row per design and config.

Run ``python bench/designs.py`` from the repository root.  The numpy yardsticks are the
independent references of ``tests/bptt_reference.py`` (per step, dense one-hot inputs, as the
chapter's equations are written), ``bench/numpy_elman.per_step`` for Elman and
``bench/numpy_lstm.per_step`` for the LSTM.  ``user LSTM`` is an LSTM a user writes with
``rnn.Recurrence``: a dict state {"s", "h"}, the stacked input projection as ``input_map``,
the gates sliced from one matrix product.  A ``torch`` column appears when torch imports
(not a dependency): the same LSTM as a ``torch.nn.LSTMCell`` loop.  Same protocol as
``bench/run.py``: one process, single-threaded BLAS, warm-up, interleaved rounds, median CPU time.
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import bptt_reference as ref            # noqa: E402
import rnn                              # noqa: E402
import tinygraph as tg                  # noqa: E402
from bench import numpy_elman as ne     # noqa: E402
from bench import numpy_lstm as nl      # noqa: E402
from bench.run import CONFIGS, fmt, median_ms, parse_config   # noqa: E402


def user_lstm(params):
    """An LSTM written with rnn.Recurrence on the stacked parameters of bench/numpy_lstm.py."""
    P = {k: tg.Parameter(v, name=k) for k, v in params.items()}
    H = P["Wh"].shape[1]

    def input_map(ids):
        return tg.take(P["Ux"].T, ids, axis=0) + P["b"]

    def step(state, u):
        z = tg.addmm(u, state["h"], P["Wh"].T)
        gates = z[..., :3 * H].sigmoid()
        s = gates[..., :H] * state["s"] + gates[..., H:2 * H] * z[..., 3 * H:].tanh()
        return {"s": s, "h": s.tanh() * gates[..., 2 * H:]}

    cell = rnn.Recurrence(step, list(P.values()), {"s": H, "h": H}, n_in=P["Ux"].shape[1],
                          readout=lambda state: tg.addmm(P["c"], state["h"], P["V"].T),
                          input_map=input_map, name="lstm")
    return cell


def _engine(model, *args):
    params = model.parameters()

    def run():
        for p in params:
            p.grad = None
        model.loss(*args).backward()
    return run


def rows_for(config, dtype):
    """design -> {"engine": runner, "numpy": runner}."""
    V, H, T, B = parse_config(config)
    xs, ys = ne.make_data(V, T, B, seed=0)
    rng = np.random.default_rng(0)
    out = {}

    def design(name, model, engine_args, numpy_fn):
        params = {k: p.data for k, p in model.named_parameters()}
        out[name] = {"engine": _engine(model, *engine_args), "numpy": lambda: numpy_fn(params)}

    elman = rnn.ElmanRNN(V, H, V, dtype=dtype)
    out["elman"] = {"engine": _engine(elman, xs, ys),
                    "numpy": lambda: ne.per_step({k: p.data for k, p in elman.named_parameters()},
                                                 xs, ys)}
    design("jordan (teacher forced)", rnn.JordanRNN(V, H, V, dtype=dtype), (xs, ys),
           lambda p: ref.jordan(p, xs, ys))
    labels = ys[-1]
    design("seq2one", rnn.SequenceToOne(V, H, V, dtype=dtype), (xs, labels),
           lambda p: ref.sequence_to_one(p, xs, labels))
    vec = rng.normal(size=(B, V))
    design("vec2seq", rnn.VectorToSequence(V, H, V, dtype=dtype), (vec, ys),
           lambda p: ref.vector_to_sequence(p, vec, ys))
    design("conditional", rnn.ConditionalRNN(V, H, V, dtype=dtype), (xs, ys),
           lambda p: ref.conditional(p, xs, ys))
    lstm_params = nl.init_params(V, H, dtype=dtype)
    out["user LSTM"] = {"engine": _engine(user_lstm(lstm_params), xs, ys),
                        "numpy": lambda: nl.per_step(lstm_params, xs, ys)}
    torch_run = torch_lstm(lstm_params, xs, ys)
    if torch_run is not None:
        out["user LSTM"]["torch"] = torch_run
    return out


def torch_lstm(params, xs, ys):
    """The same LSTM as a torch.nn.LSTMCell loop (one thread), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    H = params["Wh"].shape[1]
    order = np.r_[np.arange(H, 2 * H), np.arange(0, H), np.arange(3 * H, 4 * H),
                  np.arange(2 * H, 3 * H)]      # torch's gate order: input, forget, cell, output
    cell = torch.nn.LSTMCell(params["Ux"].shape[1], H).double()
    out = torch.nn.Linear(H, params["V"].shape[0]).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(params["Ux"][order]))
        cell.weight_hh.copy_(torch.from_numpy(params["Wh"][order]))
        cell.bias_ih.copy_(torch.from_numpy(params["b"][order]))
        cell.bias_hh.zero_()
        out.weight.copy_(torch.from_numpy(params["V"]))
        out.bias.copy_(torch.from_numpy(params["c"]))
    eye = torch.eye(params["Ux"].shape[1], dtype=torch.float64)
    x = eye[torch.from_numpy(xs)]
    y = torch.from_numpy(ys)
    back = np.argsort(order)

    def run():
        """One loss + backward; returns (loss, grads in bench/numpy_lstm's layout)."""
        cell.zero_grad()
        out.zero_grad()
        h = torch.zeros(xs.shape[1], H, dtype=torch.float64)
        s = torch.zeros_like(h)
        loss = 0
        for t in range(xs.shape[0]):
            h, s = cell(x[t], (h, s))
            loss = loss + torch.nn.functional.cross_entropy(out(h), y[t])
        loss.backward()
        return loss.item(), {"Ux": cell.weight_ih.grad.numpy()[back],
                             "Wh": cell.weight_hh.grad.numpy()[back],
                             "b": cell.bias_ih.grad.numpy()[back],
                             "V": out.weight.grad.numpy(), "c": out.bias.grad.numpy()}
    return run


def check_torch():
    """Largest relative difference of the torch LSTMCell loop from bench/numpy_lstm (tiny config)."""
    params = nl.init_params(7, 5, seed=0)
    rng = np.random.default_rng(1)
    params["b"] = rng.normal(0, 0.3, params["b"].shape)
    params["c"] = rng.normal(0, 0.3, params["c"].shape)
    xs, ys = ne.make_data(7, 6, 3, seed=0)
    run = torch_lstm(params, xs, ys)
    if run is None:
        raise SystemExit("torch is not importable")
    loss, grads = run()
    expected_loss, expected = nl.per_step(params, xs, ys)
    worst = abs(loss - expected_loss) / abs(expected_loss)
    for k, g in expected.items():
        worst = max(worst, np.max(np.abs(grads[k] - g)) / np.max(np.abs(g)))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--check-torch", action="store_true",
                        help="only compare the torch LSTMCell loop with bench/numpy_lstm.py")
    args = parser.parse_args(argv)
    if args.check_torch:
        worst = check_torch()
        print(f"torch LSTMCell loop vs numpy LSTM: largest relative difference {worst:.1e}")
        sys.exit(0 if worst < 1e-10 else 1)
    dtype = np.float64
    print("| config V/H/T/B | design | engine ms | per-step numpy ms | eng/numpy | torch ms |"
          " eng/torch | eng/elman |")
    print("|---|---|---|---|---|---|---|---|")
    for config in args.configs.split(","):
        rows = rows_for(config, dtype)
        runners = {(d, k): r for d, kinds in rows.items() for k, r in kinds.items()}
        ms = median_ms(runners, args.repeats, args.budget)
        elman = ms[("elman", "engine")]
        for d in rows:
            e, n, t = ms[(d, "engine")], ms[(d, "numpy")], ms.get((d, "torch"))
            print(f"| {config} | {d} | {fmt(e)} | {fmt(n)} | {fmt(e / n)} | {fmt(t)} | "
                  f"{fmt(None if t is None else e / t)} | {fmt(e / elman)} |", flush=True)


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(main)
