"""Speed of every design's loss + backward beside a hand-written numpy forward + BPTT of the same
equations (issue 12): one row per design and config.

Run ``python bench/designs.py`` from the repository root.  The numpy yardsticks are the
independent references of ``tests/bptt_reference.py`` (per step, dense one-hot inputs, as the
chapter's equations are written), ``bench/numpy_elman.per_step`` for Elman and
``bench/numpy_lstm.per_step`` for the LSTM.  ``user LSTM`` is an LSTM a user writes with
``rnn.Recurrence``: a dict state {"s", "h"}, the stacked input projection as ``input_map``,
the gates sliced from one matrix product; ``rnn.LSTM`` is the built-in design on the same
parameters; ``rnn.GRU`` is measured beside ``tests/bptt_reference.gru``.  Both gated designs
compute their gates from stacked weights in ``loss`` (one matmul per step).  ``batched numpy``
is ``bench/numpy_elman.batched`` (only the recurrence in its loop), for Elman.  The torch columns
are the same LSTM as a ``torch.nn.LSTMCell`` loop and as one ``torch.nn.LSTM`` call, measured
when torch imports (not a dependency; "n/a" otherwise).  ``engine, replay off`` is the same
loss with ``model.replayable = False`` (every step as engine ops, as before rnn.replay).  Every
config runs in float64 and float32 (``--dtypes``).  Same protocol as ``bench/run.py``: one
process, single-threaded BLAS, warm-up, interleaved rounds, median CPU time.
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
from bench.run import CONFIGS, DTYPES, fmt, median_ms, parse_config   # noqa: E402


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


def _engine(model, *args, replay=True):
    """One loss + backward of ``model`` (replaying its later steps, or with ``replay=False``
    every step as engine ops: the engine before rnn.replay)."""
    params = model.parameters()

    def run():
        for p in params:
            p.grad = None
        model.replayable = replay
        try:
            model.loss(*args).backward()
        finally:
            model.replayable = True
    return run


def _with_unreplayed(out, models):
    """Each design's row also gets the engine with replay off (column "no replay")."""
    for name, (model, args) in models.items():
        out[name]["unreplayed"] = _engine(model, *args, replay=False)
    return out


def rows_for(config, dtype):
    """design -> {"engine": runner, "numpy": runner}."""
    V, H, T, B = parse_config(config)
    xs, ys = ne.make_data(V, T, B, seed=0)
    rng = np.random.default_rng(0)
    out = {}

    models = {}

    def design(name, model, engine_args, numpy_fn):
        params = {k: p.data for k, p in model.named_parameters()}
        out[name] = {"engine": _engine(model, *engine_args), "numpy": lambda: numpy_fn(params)}
        models[name] = (model, engine_args)

    elman = rnn.ElmanRNN(V, H, V, dtype=dtype)
    elman_params = {k: p.data for k, p in elman.named_parameters()}
    models["elman"] = (elman, (xs, ys))
    out["elman"] = {"engine": _engine(elman, xs, ys),
                    "numpy": lambda: ne.per_step(elman_params, xs, ys),
                    "batched": lambda: ne.batched(elman_params, xs, ys)}
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
    numpy_lstm = {"numpy": lambda: nl.per_step(lstm_params, xs, ys)}
    for kind in ("LSTMCell", "nn.LSTM"):
        run = torch_lstm(lstm_params, xs, ys, kind)
        if run is not None:
            numpy_lstm[kind] = run
    for name, model in (("user LSTM", user_lstm(lstm_params)),
                        ("rnn.LSTM", builtin_lstm(lstm_params))):
        out[name] = {"engine": _engine(model, xs, ys), **numpy_lstm}
        models[name] = (model, (xs, ys))
    design("rnn.GRU", rnn.GRU(V, H, V, dtype=dtype), (xs, ys), lambda p: ref.gru(p, xs, ys))
    return _with_unreplayed(out, models)


def builtin_lstm(params):
    """rnn.LSTM on the stacked parameters of bench/numpy_lstm.py (blocks f, g, q, input unit)."""
    H, V = params["Wh"].shape[1], params["Ux"].shape[1]
    model = rnn.LSTM(V, H, V, dtype=params["Wh"].dtype)
    state = {"V": params["V"], "c": params["c"]}
    for i, k in enumerate(("f", "g", "o", "")):
        block = slice(i * H, (i + 1) * H)
        state.update({f"U{k}": params["Ux"][block], f"W{k}": params["Wh"][block],
                      f"b{k}": params["b"][block]})
    model.load_state_dict(state)
    return model


def torch_lstm(params, xs, ys, kind="LSTMCell"):
    """The same LSTM in torch (one thread, the parameters' dtype): a ``torch.nn.LSTMCell`` loop
    (``kind="LSTMCell"``) or one ``torch.nn.LSTM`` call (``kind="nn.LSTM"``); None without
    torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    dtype = torch.float64 if params["Wh"].dtype == np.float64 else torch.float32
    H, V = params["Wh"].shape[1], params["Ux"].shape[1]
    order = np.r_[np.arange(H, 2 * H), np.arange(0, H), np.arange(3 * H, 4 * H),
                  np.arange(2 * H, 3 * H)]      # torch's gate order: input, forget, cell, output
    if kind == "LSTMCell":
        cell = torch.nn.LSTMCell(V, H).to(dtype)
        weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    else:
        cell = torch.nn.LSTM(V, H).to(dtype)
        weights = (cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, cell.bias_hh_l0)
    out = torch.nn.Linear(H, params["V"].shape[0]).to(dtype)
    with torch.no_grad():
        for w, k in zip(weights, ("Ux", "Wh", "b")):
            w.copy_(torch.from_numpy(np.ascontiguousarray(params[k][order])))
        weights[3].zero_()
        out.weight.copy_(torch.from_numpy(params["V"]))
        out.bias.copy_(torch.from_numpy(params["c"]))
    eye = torch.eye(V, dtype=dtype)
    x = eye[torch.from_numpy(xs)]
    y = torch.from_numpy(ys)
    back = np.argsort(order)
    steps, batch = xs.shape

    def grads():
        return {"Ux": weights[0].grad.numpy()[back], "Wh": weights[1].grad.numpy()[back],
                "b": weights[2].grad.numpy()[back],
                "V": out.weight.grad.numpy(), "c": out.bias.grad.numpy()}

    def run_cell():
        """One loss + backward; returns (loss, grads in bench/numpy_lstm's layout)."""
        cell.zero_grad()
        out.zero_grad()
        h = torch.zeros(batch, H, dtype=dtype)
        s = torch.zeros_like(h)
        loss = 0
        for t in range(steps):
            h, s = cell(x[t], (h, s))
            loss = loss + torch.nn.functional.cross_entropy(out(h), y[t])
        loss.backward()
        return loss.item(), grads()

    def run_layer():
        """The same with one nn.LSTM call: the mean over the batch of each step, summed."""
        cell.zero_grad()
        out.zero_grad()
        hs, _ = cell(x)                                    # (T, B, H)
        logits = out(hs).reshape(steps * batch, -1)
        loss = torch.nn.functional.cross_entropy(logits, y.reshape(-1), reduction="sum") / batch
        loss.backward()
        return loss.item(), grads()
    return run_cell if kind == "LSTMCell" else run_layer


def check_torch():
    """Largest relative difference of the torch LSTMCell loop and of nn.LSTM from
    bench/numpy_lstm (tiny config, float64)."""
    params = nl.init_params(7, 5, seed=0)
    rng = np.random.default_rng(1)
    params["b"] = rng.normal(0, 0.3, params["b"].shape)
    params["c"] = rng.normal(0, 0.3, params["c"].shape)
    xs, ys = ne.make_data(7, 6, 3, seed=0)
    expected_loss, expected = nl.per_step(params, xs, ys)
    worst = 0.0
    for kind in ("LSTMCell", "nn.LSTM"):
        run = torch_lstm(params, xs, ys, kind)
        if run is None:
            raise SystemExit("torch is not importable")
        loss, grads = run()
        worst = max(worst, abs(loss - expected_loss) / abs(expected_loss))
        for k, g in expected.items():
            worst = max(worst, np.max(np.abs(grads[k] - g)) / np.max(np.abs(g)))
    return worst


def stacking(configs, dtypes, repeats, budget):
    """The effect of stacking the gates alone: ``rnn.LSTM`` and ``rnn.GRU`` loss + backward with
    stacked gates (``loss``) and per gate (the same loss inside an outer ``model.transposes()``,
    whose ``stack_gates`` is False), interleaved rounds in this process, median CPU ms."""
    runners = {}
    for config in configs:
        V, H, T, B = parse_config(config)
        xs, ys = ne.make_data(V, T, B, seed=0)
        for dtype_name in dtypes:
            for name, cls in (("rnn.LSTM", rnn.LSTM), ("rnn.GRU", rnn.GRU)):
                model = cls(V, H, V, dtype=DTYPES[dtype_name])
                runners[(config, dtype_name, name, True)] = _engine(model, xs, ys)
                runners[(config, dtype_name, name, False)] = _per_gate(model, xs, ys)
    ms = median_ms(runners, repeats, budget)
    print("| config V/H/T/B | dtype | design | stacked ms | per gate ms | stacked / per gate |")
    print("|---|---|---|---|---|---|")
    for (config, dtype_name, name, stacked), t in ms.items():
        if stacked:
            per_gate = ms[(config, dtype_name, name, False)]
            print(f"| {config} | {dtype_name} | {name} | {fmt(t)} | {fmt(per_gate)} | "
                  f"{fmt(t / per_gate)} |", flush=True)


def _per_gate(model, *args):
    params = model.parameters()

    def run():
        for p in params:
            p.grad = None
        with model.transposes():      # stack_gates=False, shared by the loss's own unroll
            model.loss(*args).backward()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--check-torch", action="store_true",
                        help="only compare the torch LSTMCell loop and nn.LSTM with "
                             "bench/numpy_lstm.py")
    parser.add_argument("--stacking", action="store_true",
                        help="only time rnn.LSTM and rnn.GRU with stacked gates against per gate")
    args = parser.parse_args(argv)
    if args.stacking:
        stacking(args.configs.split(","), args.dtypes.split(","), args.repeats, args.budget)
        return
    if args.check_torch:
        worst = check_torch()
        print(f"torch LSTMCell loop and nn.LSTM vs numpy LSTM: largest relative difference "
              f"{worst:.1e}")
        sys.exit(0 if worst < 1e-10 else 1)
    peers = ("unreplayed", "numpy", "batched", "LSTMCell", "nn.LSTM")
    heads = ("engine, replay off", "per-step numpy", "batched numpy", "torch LSTMCell loop",
             "torch nn.LSTM")
    print("| config V/H/T/B | dtype | design | engine ms | "
          + " | ".join(f"{h} ms | eng/{h}" for h in heads) + " | eng/elman |")
    print("|---" * (4 + 2 * len(heads) + 1) + "|")
    for dtype_name in args.dtypes.split(","):
        for config in args.configs.split(","):
            rows = rows_for(config, DTYPES[dtype_name])
            runners = {(d, k): r for d, kinds in rows.items() for k, r in kinds.items()}
            ms = median_ms(runners, args.repeats, args.budget)
            elman = ms[("elman", "engine")]
            for d, kinds in rows.items():
                e = ms[(d, "engine")]
                cells = []
                for kind in peers:
                    t = ms.get((d, kind))
                    if t is None and kind in ("LSTMCell", "nn.LSTM") and "LSTM" in d:
                        cells += ["n/a", "n/a"]            # torch does not import here
                    else:
                        cells += [fmt(t), fmt(None if t is None else e / t)]
                print(f"| {config} | {dtype_name} | {d} | {fmt(e)} | " + " | ".join(cells)
                      + f" | {fmt(e / elman)} |", flush=True)


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(main)
