"""The explorer's size and speed: the pages of issue 22's three cases.

For each case (a model and a length, on random ids): the time to make the page
(``viz.explore``), wall clock and CPU time (this process and the renderer's processes), beside
one ``loss(xs, ys).backward()`` of the same model and data (median of several) and the ratio
of the two; the page's size on disk; and the time headless Chromium (the system's, through
Playwright) takes from navigation until the page's script has drawn everything
(``window.explorer`` defined).  Targets (issues 16 and 22): a 200-step page under 5 MB that
opens in under 2 s; ElmanRNN(57, 128, 57) at 200 steps made in at most 100 times one loss +
backward; 10,000 steps of ElmanRNN(6, 8, 6) in at most 10 s and a 40-step LSTM in at most 1 s
on a quiet machine.

    .venv/bin/python bench/explorer.py [--cases elman:57:128:200 elman:6:8:10000 lstm:6:8:40]
                                       [--no-open] [--against DIR [--rounds N]]

``--against DIR`` measures the same cases side by side with the code of another checkout (e.g.
``git worktree add /tmp/base main``): each round runs every case once with each tree, one fresh
process per tree and case, alternating, and the summary gives each tree's median ratios.  The
load average is printed with every row (the machine is shared; compare ratios of one run).
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.environ.get("TINYGRAPH_BENCH_TREE") or os.path.join(HERE, "..")   # the code measured
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, TREE)

import rnn  # noqa: E402
import viz  # noqa: E402


DESIGNS = {"elman": rnn.ElmanRNN, "lstm": rnn.LSTM}
CASES = ["elman:57:128:200", "elman:6:8:10000", "lstm:6:8:40"]


def cpu_seconds():
    """CPU time of this process and of its finished children (the renderer), in seconds."""
    t = os.times()     # children's times are only in os.times (10 ms ticks); ours more finely
    return time.process_time() + t.children_user + t.children_system


def timed(fn):
    """(result, wall seconds, CPU seconds) of one call."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def loss_backward_seconds(model, xs, ys, budget=2.0, repeats=9):
    """Median wall and CPU seconds of one loss + backward (one warm-up, at least 3 runs)."""
    def once():
        for p in model.parameters():
            p.grad = None
        model.loss(xs, ys).backward()
    once()
    walls, cpus, start = [], [], time.perf_counter()
    while len(walls) < 3 or (len(walls) < repeats and time.perf_counter() - start < budget):
        _, wall, cpu = timed(once)
        walls.append(wall)
        cpus.append(cpu)
    return float(np.median(walls)), float(np.median(cpus))


def open_seconds(browser, path, repeats=3):
    """Best of ``repeats`` navigations until the page has drawn (window.explorer set)."""
    best = float("inf")
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        start = time.perf_counter()
        page.goto(f"file://{path}")
        page.wait_for_function("window.explorer !== undefined")
        best = min(best, time.perf_counter() - start)
        page.close()
        if errors:
            raise RuntimeError(f"{path}: {errors}")
    return best


def parse_case(text):
    """"design:vocab:hidden:steps" -> (label, model, steps)."""
    try:
        kind, vocab, hidden, steps = text.split(":")
        vocab, hidden, steps = int(vocab), int(hidden), int(steps)
        design = DESIGNS[kind]
    except (ValueError, KeyError):
        raise SystemExit(f"bench/explorer.py: a case is design:vocab:hidden:steps with design one "
                         f"of {sorted(DESIGNS)}, got {text!r}") from None
    return f"{design.__name__}({vocab}, {hidden}, {vocab})", design(vocab, hidden, vocab, seed=0), \
        vocab, steps


def against(args):
    """Every case with this tree and with ``args.against``, alternating, ``args.rounds`` times;
    each measurement a fresh process (``TINYGRAPH_BENCH_TREE`` names the tree it imports)."""
    trees = [("this", os.path.abspath(os.path.join(HERE, ".."))),
             ("against", os.path.abspath(args.against))]
    print(f"this = {trees[0][1]}, against = {trees[1][1]}")
    print("| code | model | steps | make wall s | make CPU s | loss+backward wall ms "
          "| loss+backward CPU ms | make/(loss+backward) wall | CPU | size MB | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = {}
    for _ in range(args.rounds):
        for case in args.cases:
            for label, tree in trees:
                load = os.getloadavg()[0]
                env = dict(os.environ, TINYGRAPH_BENCH_TREE=tree)
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--no-open",
                                      "--cases", case], env=env, capture_output=True, text=True,
                                     check=True).stdout
                row = [line for line in out.splitlines() if line.startswith("| ")
                       and not line.startswith("| model")][-1]
                cells = [c.strip() for c in row.strip("|").split("|")]
                ratios.setdefault((case, label), []).append((float(cells[6]), float(cells[7])))
                print(f"| {label} | {' | '.join(cells[:-1])} | {load:.1f} |", flush=True)
    print("\nmedian make/(loss+backward), wall and CPU:")
    for case in args.cases:
        text = [f"{label} {np.median([w for w, _ in ratios[(case, label)]]):.0f} / "
                f"{np.median([c for _, c in ratios[(case, label)]]):.0f}" for label, _ in trees]
        print(f"  {case}: " + ", ".join(text))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=CASES)
    parser.add_argument("--no-open", action="store_true", help="skip the Chromium timing")
    parser.add_argument("--against", metavar="DIR",
                        help="another checkout, measured side by side (no Chromium timing)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --against")
    args = parser.parse_args()
    if args.against:
        return against(args)
    cases = [parse_case(c) for c in args.cases]
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    print("| model | steps | make wall s | make CPU s | loss+backward wall ms "
          "| loss+backward CPU ms | make/(loss+backward) wall | CPU | size MB | open s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        browser = None
        if not args.no_open:
            from playwright.sync_api import sync_playwright
            p = stack.enter_context(sync_playwright())
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox"])
            stack.callback(browser.close)
        for label, model, vocab, steps in cases:
            xs, ys = rng.integers(0, vocab, steps), rng.integers(0, vocab, steps)
            one_wall, one_cpu = loss_backward_seconds(model, xs, ys)
            page, made_wall, made_cpu = timed(lambda: viz.explore(model, xs, ys))
            path = page.save(os.path.join(folder, f"explorer_{steps}.html"))
            size = os.path.getsize(path) / 1e6
            opened = "—" if browser is None else f"{open_seconds(browser, path):.2f}"
            print(f"| {label} | {steps:,} | {made_wall:.2f} | {made_cpu:.2f} | "
                  f"{one_wall * 1e3:.1f} | {one_cpu * 1e3:.1f} | {made_wall / one_wall:.0f} | "
                  f"{made_cpu / one_cpu:.0f} | "
                  f"{size:.2f} | {opened} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(main)
