"""The explorer's size and speed: an ElmanRNN page at 200 and 10,000 steps.

For each length: the time to make the page (``viz.explore``), its size on disk, and the
time headless Chromium (the system's, through Playwright) takes from navigation until the
page's script has drawn everything (``window.explorer`` defined).  The targets of issue 16:
a 200-step page under 5 MB that opens in under 2 s; a 10,000-step page that still opens.

    .venv/bin/python bench/explorer.py [--steps 200 10000] [--hidden 8]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import rnn  # noqa: E402
import viz  # noqa: E402


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[200, 10_000])
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=6)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    rng = np.random.default_rng(0)
    model = rnn.ElmanRNN(args.vocab, args.hidden, args.vocab, seed=0)
    print(f"ElmanRNN({args.vocab}, {args.hidden}, {args.vocab})")
    print(f"{'steps':>7} {'make (s)':>9} {'size (MB)':>10} {'open (s)':>9}")
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for steps in args.steps:
            xs, ys = rng.integers(0, args.vocab, steps), rng.integers(0, args.vocab, steps)
            start = time.perf_counter()
            page = viz.explore(model, xs, ys)
            made = time.perf_counter() - start
            path = page.save(os.path.join(folder, f"explorer_{steps}.html"))
            size = os.path.getsize(path) / 1e6
            print(f"{steps:>7} {made:>9.1f} {size:>10.2f} {open_seconds(browser, path):>9.2f}",
                  flush=True)
        browser.close()


if __name__ == "__main__":      # one BLAS thread: set before numpy loads (bench/threads.py)
    from bench.threads import run_single_threaded
    run_single_threaded(main)
