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
                                       [--no-open]
"""

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=CASES)
    parser.add_argument("--no-open", action="store_true", help="skip the Chromium timing")
    args = parser.parse_args()
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
