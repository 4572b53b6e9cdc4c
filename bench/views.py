"""Readable unrolled views (issue 20): the layout figures of every design at 4 steps, and the
time to build and render the summarised view of a long unroll.

Run ``python bench/views.py [--steps 10000] [--layout-only | --speed-only]`` from the
repository root.  Per design: interleaved bands (pairs of steps whose columns overlap or are
out of order), stray edges (edges passing through a step they do not join), misplaced ends
(``(...)`` and static nodes inside a step), width per step in inches, pairs of edges that
cross; then the seconds of
``viz.render(viz.unrolled(model, steps))`` (trace, derive, draw, lay out; one run), wall clock
and CPU time (this process and the renderer's, which a machine shared with other jobs does not
inflate).
"""

import argparse
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import viz                                  # noqa: E402
from viz_layout import crossings, designs, measure  # noqa: E402


def layout_rows(steps=4):
    """design -> measure() of its unrolled view at ``steps`` steps."""
    out = {}
    for name, model in designs().items():
        digraph = viz.unrolled(model, steps=steps)
        out[name] = {**measure(digraph), "crossings": len(crossings(digraph))}
    return out


def _cpu():
    """CPU seconds of this process and of the renderer processes it waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def speed_rows(steps):
    """design -> (wall seconds, CPU seconds) to build and render its summarised ``steps``-step
    unrolled view (CPU: this process and the renderer, what a loaded machine does not inflate)."""
    out = {}
    for name, model in designs().items():
        wall, cpu = time.perf_counter(), _cpu()
        viz.render(viz.unrolled(model, steps=steps), "svg", quiet=True)
        out[name] = (time.perf_counter() - wall, _cpu() - cpu)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--layout-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    layout = {} if args.speed_only else layout_rows()
    speed = {} if args.layout_only else speed_rows(args.steps)
    print(f"{'design':15} {'interleaved':>11} {'stray':>6} {'ends':>5} {'in/step':>8} {'cross':>6} "
          f"{f'{args.steps:,} steps: wall s':>20} {'CPU s':>6}")
    for name in designs():
        row = layout.get(name)
        cells = ("" if row is None else f"{row['interleaved']:>11} {row['stray']:>6} "
                 f"{row['ends']:>5} {row['per_step']:>8.2f} {row['crossings']:>6}")
        secs = f"{speed[name][0]:>20.2f} {speed[name][1]:>6.2f}" if name in speed else ""
        print(f"{name:15} {cells:>40} {secs}")


if __name__ == "__main__":
    main()
