"""Speed and memory of ``rnn.ElmanRNN`` loss + backward beside hand-written numpy BPTT.

Run ``python bench/run.py`` (or ``make bench``) from the repository root.  Everything runs in
this one process with single-threaded BLAS (two threads on two cores oversubscribe and get
far slower), and every number is the median of repeated runs after a warm-up run.

Columns: the engine (generic backprop over the unrolled DAG), the per-step and the batched
numpy BPTT of :mod:`bench.numpy_elman`, their ratios, and the ratio to the peers measured on
this machine in issue 6 (float64 only).  Peak memory growth (VmHWM of /proc/self/status,
reset before each measurement) is printed for the 16/32/10000/1 config.  PyTorch and HIPS
autograd columns appear when those packages are importable (they are not dependencies).
"""

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rnn                              # noqa: E402
import tinygraph as tg                  # noqa: E402
from bench import numpy_elman as ne     # noqa: E402
from bench import overhead              # noqa: E402

CONFIGS = ["65/100/25/1", "65/128/100/32", "65/256/200/64", "16/32/1000/1", "16/32/10000/1"]
MEMORY_CONFIG = "16/32/10000/1"
DTYPES = {"float64": np.float64, "float32": np.float32}

# Issue 6: ms per forward + backward, float64, single thread, on this machine.
PEERS = {
    "65/100/25/1": {"torch loop": 2.79, "torch nn.RNN": 1.30, "HIPS autograd": 11.1},
    "65/128/100/32": {"torch loop": 29.8, "torch nn.RNN": 30.0, "HIPS autograd": 64.4},
    "65/256/200/64": {"torch loop": 215, "torch nn.RNN": 258, "HIPS autograd": 319},
    "16/32/1000/1": {"torch loop": 88.3, "torch nn.RNN": 28.6, "HIPS autograd": 602},
    "16/32/10000/1": {"torch loop": 1004, "torch nn.RNN": 332, "HIPS autograd": 9759},
}
PEER_MEMORY_MIB = {"torch loop": 129, "torch nn.RNN": 62, "HIPS autograd": 251}


def parse_config(text):
    """"vocab/hidden/steps/batch" -> four ints."""
    parts = text.split("/")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise SystemExit(f"bad config {text!r}: expected vocab/hidden/steps/batch, e.g. 65/100/25/1")
    return tuple(int(p) for p in parts)


# ---------------------------------------------------------------- the contenders


def engine_runner(n_vocab, n_hidden, xs, ys, dtype, per_step=False):
    """``model.loss`` (only the recurrence per step: what training uses), or with ``per_step``
    ``model.run(xs, ys).loss`` (every op of every step a node: the graph viz draws)."""
    model = rnn.ElmanRNN(n_vocab, n_hidden, n_vocab, seed=0, dtype=dtype)
    params = model.parameters()

    def run():
        for p in params:
            p.grad = None
        loss = model.run(xs, ys).loss if per_step else model.loss(xs, ys)
        loss.backward()
    return run


def numpy_runner(form, n_vocab, n_hidden, xs, ys, dtype):
    params = ne.init_params(n_vocab, n_hidden, seed=0, dtype=dtype)
    return lambda: form(params, xs, ys)


def _runners(n_vocab, n_hidden, xs, ys, dtype):
    runners = {
        "engine": engine_runner(n_vocab, n_hidden, xs, ys, dtype),
        "engine per-step graph": engine_runner(n_vocab, n_hidden, xs, ys, dtype, per_step=True),
        "per-step numpy": numpy_runner(ne.per_step, n_vocab, n_hidden, xs, ys, dtype),
        "batched numpy": numpy_runner(ne.batched, n_vocab, n_hidden, xs, ys, dtype),
    }
    runners.update(optional_runners(n_vocab, n_hidden, xs, ys, dtype))
    return runners


def optional_runners(n_vocab, n_hidden, xs, ys, dtype):
    """name -> runner for the optional peers that are importable."""
    runners = {}
    try:
        from bench import peers
    except ImportError:
        return runners
    for name, make in peers.MAKERS.items():
        runner = make(n_vocab, n_hidden, xs, ys, dtype)
        if runner is not None:
            runners[name] = runner
    return runners


# ---------------------------------------------------------------- measuring


def median_ms(runners, repeats, budget_s, clock=time.process_time):
    """name -> median time of ``run()`` in ms, by ``clock`` (process CPU time by default).

    One warm-up run each, then rounds in which every runner runs once (interleaved, so a
    burst of load from elsewhere hits all of them alike): at least 3 rounds, at most
    ``repeats``, and no new round after ``budget_s`` seconds.
    """
    for run in runners.values():
        run()
    times = {name: [] for name in runners}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats and (rounds < 3 or time.perf_counter() - start < budget_s):
        for name, run in runners.items():
            t0 = clock()
            run()
            times[name].append(clock() - t0)
        rounds += 1
    return {name: 1000 * statistics.median(ts) for name, ts in times.items()}


def _vm_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def peak_growth_mib(run):
    """Growth of the peak resident set (VmHWM) during one ``run()``, in MiB, and the number of
    objects the cycle collector finds afterwards (0: the graph was freed by reference counting)."""
    gc.collect()
    gc.disable()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")      # resets VmHWM to the current resident set
        before = _vm_kib("VmHWM")
        run()
        after = _vm_kib("VmHWM")
        cycles = gc.collect()
    finally:
        gc.enable()
    return (after - before) / 1024, cycles


def memory_of(name, config, dtype_name):
    """Peak growth of one contender, measured in a fresh process (memory freed by an earlier
    contender stays resident and would hide the growth of the next one)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-of", name,
           "--configs", config, "--dtypes", dtype_name]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"memory measurement of {name} failed:\n{done.stderr}")
    out = done.stdout.split()
    return float(out[0]), int(out[1])


def _child_memory(name, config, dtype_name):
    n_vocab, n_hidden, steps, batch = parse_config(config)
    xs, ys = ne.make_data(n_vocab, steps, batch, seed=0)
    runners = _runners(n_vocab, n_hidden, xs, ys, DTYPES[dtype_name])
    _runners(n_vocab, n_hidden, xs[:2], ys[:2], DTYPES[dtype_name])[name]()   # warm-up, 2 steps
    mib, cycles = peak_growth_mib(runners[name])
    print(mib, cycles)


# ---------------------------------------------------------------- the table


def fmt(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def bench(configs, dtypes, repeats, budget_s, memory, clock):
    rows, extra_names, memory_rows = [], [], []
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        for config in configs:
            n_vocab, n_hidden, steps, batch = parse_config(config)
            xs, ys = ne.make_data(n_vocab, steps, batch, seed=0)
            runners = _runners(n_vocab, n_hidden, xs, ys, dtype)
            for name in runners:
                if name not in extra_names and name not in ("engine", "per-step numpy", "batched numpy"):
                    extra_names.append(name)
            ms = median_ms(runners, repeats, budget_s, clock)
            rows.append((config, dtype_name, ms))
            print(f"  measured {config} {dtype_name}: engine {ms['engine']:.2f} ms", file=sys.stderr)
            if memory and config == MEMORY_CONFIG:
                mem = {name: memory_of(name, config, dtype_name) for name in runners}
                memory_rows.append((config, dtype_name, mem))
    return rows, extra_names, memory_rows


def print_table(rows, extra_names, memory_rows):
    peer_names = ["torch loop", "torch nn.RNN", "HIPS autograd"]
    live = [n for n in peer_names if n in extra_names]   # measured here; the others from issue 6
    head = (["config V/H/T/B", "dtype", "engine ms", "per-step np ms", "batched np ms"]
            + [f"{n} ms" for n in extra_names]
            + ["eng/per-step", "eng/batched"]
            + [f"eng/{n}" if n in live else f"eng/{n} (issue)" for n in peer_names])
    lines = [head, ["---"] * len(head)]
    for config, dtype_name, ms in rows:
        e = ms["engine"]
        peers = PEERS.get(config, {}) if dtype_name == "float64" else {}
        peers = {**peers, **{n: ms[n] for n in live if n in ms}}
        lines.append([config, dtype_name, fmt(e), fmt(ms["per-step numpy"]), fmt(ms["batched numpy"])]
                     + [fmt(ms.get(n)) for n in extra_names]
                     + [fmt(e / ms["per-step numpy"]), fmt(e / ms["batched numpy"])]
                     + [fmt(e / peers[n] if n in peers else None) for n in peer_names])
    print("\nms per loss + backward (median), ratios < 1 mean the engine is faster\n")
    for line in lines:
        print("| " + " | ".join(line) + " |")
    if memory_rows:
        print("\npeak memory growth (VmHWM) during one loss + backward; objects left for the cycle collector\n")
        print("| config | dtype | " + " | ".join(memory_rows[0][2]) + " |")
        print("|---|---|" + "---|" * len(memory_rows[0][2]))
        for config, dtype_name, mem in memory_rows:
            cells = [f"{mib:.1f} MiB, {cycles} cyc" for mib, cycles in mem.values()]
            print(f"| {config} | {dtype_name} | " + " | ".join(cells) + " |")
        print("\nissue 6 peers at " + MEMORY_CONFIG + ": per-step numpy 5 MiB, "
              + ", ".join(f"{n} {m} MiB" for n, m in PEER_MEMORY_MIB.items()))


def render_times(steps):
    """view name -> (seconds to build it, seconds to build and render it to svg) for the views
    of an Elman RNN (16/32/16) unrolled over ``steps`` steps: the Digraphs of viz, and the
    gradient-flow chart (norms of dL/dh(t), then the matplotlib bar chart of them)."""
    import tempfile

    import viz
    from viz import plots
    model = rnn.ElmanRNN(16, 32, 16, seed=0)
    xs, ys = ne.make_data(16, steps, 1, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        chart = os.path.join(folder, "flow.svg")
        views = {
            "viz.unrolled": (lambda: viz.unrolled(model, steps=steps), viz.render),
            "viz.folded": (lambda: viz.folded(model, steps=steps), viz.render),
            "viz.graph(loss)": (lambda: viz.graph(model.run(xs, ys).loss), viz.render),
            "viz.unrolled(grads=True)": (lambda: viz.unrolled(model, steps=steps, grads=True),
                                         viz.render),
            "viz.graph(loss, grads=True)": (lambda: viz.graph(model.run(xs, ys).loss, grads=True),
                                            viz.render),
            "gradient_norms + plots.gradient_flow": (
                lambda: [n for _, n in viz.gradient_norms(model.run(xs, ys).loss)],
                lambda norms: plots.gradient_flow(norms, chart)),
        }
        times = {}
        for name, (build, render) in views.items():
            t0 = time.perf_counter()
            built = build()
            t1 = time.perf_counter()
            render(built)
            times[name] = (t1 - t0, time.perf_counter() - t0)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated vocab/hidden/steps/batch (default: the five of issue 6)")
    parser.add_argument("--dtypes", default="float64,float32", help="comma-separated: float64,float32")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per cell (at most)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per cell after 3 runs")
    parser.add_argument("--quick", action="store_true",
                        help="3 runs per cell, float64 only, no 10,000-step config unless asked")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--overhead", action="store_true",
                        help="also print the engine's per-node overhead (create + backward) vs numpy")
    parser.add_argument("--render", type=int, metavar="STEPS", default=0,
                        help="also time the viz views of an unroll of STEPS steps (e.g. 10000)")
    parser.add_argument("--wall", action="store_true",
                        help="time by the wall clock instead of this process's CPU time (the same "
                             "on an idle machine; CPU time ignores other processes' load)")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)   # internal: one memory measurement
    args = parser.parse_args(argv)
    if args.memory_of:
        _child_memory(args.memory_of, args.configs, args.dtypes)
        return
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in DTYPES:
            raise SystemExit(f"unknown dtype {d!r}: choose from {', '.join(DTYPES)}")
    for c in configs:
        parse_config(c)
    repeats, budget = args.repeats, args.budget
    if args.quick:
        repeats, budget = 3, 0.0
        if args.configs == parser.get_default("configs"):
            configs = [c for c in configs if c != MEMORY_CONFIG]
        if args.dtypes == parser.get_default("dtypes"):
            dtypes = ["float64"]
    print(f"numpy {np.__version__}, single-threaded BLAS, {'wall' if args.wall else 'CPU'} time, "
          f"at most {repeats} runs per cell", file=sys.stderr)
    clock = time.perf_counter if args.wall else time.process_time
    rows, extra_names, memory_rows = bench(configs, dtypes, repeats, budget, not args.no_memory, clock)
    print_table(rows, extra_names, memory_rows)
    if args.overhead:
        overhead.print_table()
    if args.render:
        print(f"\nviews of a {args.render}-step Elman unroll (wall time, s)\n")
        print("| view | build | build + render svg |\n|---|---|---|")
        for name, (built, rendered) in render_times(args.render).items():
            print(f"| {name} | {built:.2f} | {rendered:.2f} |")


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(main)
