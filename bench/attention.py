"""Where attention must win (issue 21): reverse sequences of ``--length`` symbols (default 20)
with rnn.EncoderDecoder, plain (the fixed context C of figure 10.12) against additive and dot
attention, each at the same parameter budget: the plain model gets the hidden size whose
parameter count is nearest to the additive model's (dot attention adds no parameters, so it
runs at the plain model's size and at the additive model's).

Run ``python bench/attention.py`` from the repository root (``--updates``, ``--seeds``,
``--length``, ``--hidden``).  Each model trains with Adam on fresh batches of 32
(``rnn.tasks.ReverseTask``) and is judged by greedy decoding of 256 held-out sequences it never
saw: the fraction of output symbols and of whole sequences written right.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rnn.tasks import ReverseTask, n_parameters   # noqa: E402


def plain_hidden(n_params, n_symbols):
    """The H whose plain EncoderDecoder(n_symbols, H, n_symbols + 1) has the parameter count
    nearest to ``n_params``, counted on built models (no formula to drift from the class)."""
    best, best_gap = 1, None
    for h in range(1, 512):
        task = ReverseTask(0, hidden=h, n_symbols=n_symbols, length=2)
        gap = abs(n_parameters(task.model) - n_params)
        if best_gap is None or gap < best_gap:
            best, best_gap = h, gap
        elif gap > best_gap:
            break
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=48, help="hidden size of the attention models")
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args(argv)
    shape = {"length": args.length, "n_symbols": args.symbols}
    budget = n_parameters(ReverseTask(0, hidden=args.hidden, attention="additive", **shape).model)
    matched = plain_hidden(budget, args.symbols)
    contenders = [("plain", matched, None), ("additive", args.hidden, "additive"),
                  ("dot", args.hidden, "dot"), ("dot", matched, "dot")]
    print(f"reverse {args.length} of {args.symbols} symbols, {args.updates} updates of batch 32, "
          f"lr {args.lr}; held out: 256 sequences, greedy decoding")
    for seed in (int(s) for s in args.seeds.split(",")):
        for label, hidden, attention in contenders:
            task = ReverseTask(seed, hidden=hidden, lr=args.lr, attention=attention, **shape)
            start = time.process_time()
            losses = [task.step(k) for k in range(args.updates)]
            seconds = time.process_time() - start
            symbols, sequences = task.accuracy()
            print(f"seed {seed}  {label:8s} H={hidden:3d} {n_parameters(task.model):6,} params  "
                  f"train loss/step {np.mean(losses[-50:]):.3f}  held-out loss/step "
                  f"{task.held_out_loss():.3f}  symbols {symbols:6.1%}  sequences "
                  f"{sequences:6.1%}  ({seconds:.0f} s CPU)", flush=True)


if __name__ == "__main__":
    main()
