"""Write tests/data/torch_reference.npz: what PyTorch computes for nn.RNN / nn.LSTM / nn.GRU x
num_layers {1, 2} x bidirectional {no, yes} with a Linear head, in float64, so that the weight
mapping of rnn.from_torch / to_torch is checked without torch (tests/test_rnn_pytorch.py).

Run where torch is installed, from the repository root:
    python tests/data/make_torch_reference.py
For every case "<kind>_<layers>_<bidirectional>" it saves the module's state_dict arrays
(``<case>/param/<name>``), the head's (``<case>/head/weight``, ``/bias``), the inputs xs (T, B,
n_in) and targets ys (T, B), torch's outputs o = head(module(xs)[0]), the loss
sum_t mean_b CE(o(t), y(t)) and the gradient of every parameter (``<case>/grad/<name>``,
``<case>/grad/head.weight``, ``/head.bias``).
"""

import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tinygraph import atomic_write   # noqa: E402

N_IN, H, N_OUT, T, B = 3, 4, 5, 4, 2
KINDS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def case(kind, layers, bidirectional, seed):
    torch.manual_seed(seed)
    module = KINDS[kind](N_IN, H, num_layers=layers, bidirectional=bidirectional,
                         dtype=torch.float64)
    head = torch.nn.Linear(H * (2 if bidirectional else 1), N_OUT, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, N_IN))
    ys = rng.integers(0, N_OUT, (T, B))
    out, _ = module(torch.tensor(xs))
    o = head(out)
    loss = torch.nn.functional.cross_entropy(o.reshape(-1, N_OUT), torch.tensor(ys).reshape(-1),
                                             reduction="sum") / B
    loss.backward()
    name = f"{kind}_{layers}_{int(bidirectional)}"
    saved = {f"{name}/xs": xs, f"{name}/ys": ys, f"{name}/o": o.detach().numpy(),
             f"{name}/loss": np.array(loss.item()),
             f"{name}/head/weight": head.weight.detach().numpy(),
             f"{name}/head/bias": head.bias.detach().numpy(),
             f"{name}/grad/head.weight": head.weight.grad.numpy(),
             f"{name}/grad/head.bias": head.bias.grad.numpy()}
    for key, p in module.named_parameters():
        saved[f"{name}/param/{key}"] = p.detach().numpy()
        saved[f"{name}/grad/{key}"] = p.grad.numpy()
    return saved


def main():
    arrays = {}
    seed = 0
    for kind in KINDS:
        for layers in (1, 2):
            for bidirectional in (False, True):
                arrays.update(case(kind, layers, bidirectional, seed))
                seed += 1
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.npz")
    with atomic_write(path, "make_torch_reference") as f:
        np.savez_compressed(f, **arrays)
    print(path, f"{len(arrays)} arrays, torch {torch.__version__}")


if __name__ == "__main__":
    main()
