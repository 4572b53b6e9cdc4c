"""Optional peers of the benchmark: the same Elman RNN loss + backward in PyTorch and HIPS autograd.

Same maths and parameters as :mod:`bench.numpy_elman` (a(t) = b + h(t-1) W^T + U[:, x(t)]^T,
h(t) = tanh(a(t)), o(t) = c + h(t) V^T, loss = sum_t mean_b CE(o(t), y(t))):

* "torch loop": one PyTorch op per step, as an unrolled DAG does it;
* "torch nn.RNN": ``torch.nn.RNN`` (tanh, the one-hot inputs as floats) for the recurrence, then
  one output layer and one cross-entropy over all steps;
* "HIPS autograd": ``autograd.numpy`` one op per step.

None of them is a project dependency: a peer whose package cannot be imported is left out
(its maker returns None).  ``bench/run.py`` reads :data:`MAKERS` (name -> make(n_vocab, n_hidden,
xs, ys, dtype) -> runner or None); ``bench/check_peers.py`` checks every importable peer's loss and
gradients against :func:`bench.numpy_elman.per_step`.
Torch runs single-threaded, like the rest of the benchmark.
"""

import importlib.util

import numpy as np

from bench import numpy_elman as ne


def importable(name):
    """Whether the package ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


def _torch_params(torch, params):
    return {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}


def _torch_result(loss, tensors):
    grads = {k: p.grad.numpy() for k, p in tensors.items()}
    for p in tensors.values():
        p.grad = None
    return loss.item(), grads


def torch_loop(params, xs, ys):
    """A runner for the per-step PyTorch Elman RNN.

    params : dict from :func:`bench.numpy_elman.init_params`; xs, ys : int ids (T, B).
    Returns run(): one forward + backward, returning (loss, grads) like ``ne.per_step``.
    """
    torch = _torch()
    F = torch.nn.functional
    p = _torch_params(torch, params)
    x_steps = [torch.from_numpy(x) for x in xs]
    y_steps = [torch.from_numpy(y) for y in ys]
    batch, n_hidden = xs.shape[1], params["W"].shape[0]
    dtype = p["W"].dtype

    def run():
        U, W, V, b, c = (p[k] for k in "UWVbc")
        ut, wt, vt = U.t(), W.t(), V.t()
        h = torch.zeros(batch, n_hidden, dtype=dtype)
        loss = 0
        for x, y in zip(x_steps, y_steps):
            h = torch.tanh(torch.addmm(b, h, wt) + ut[x])
            loss = loss + F.cross_entropy(torch.addmm(c, h, vt), y)
        loss.backward()
        return _torch_result(loss, p)
    return run


def torch_rnn(params, xs, ys):
    """A runner for ``torch.nn.RNN`` + one output layer and cross-entropy over all steps.

    Same arguments and result as :func:`torch_loop`.  The module's second bias (b_hh) is held
    at zero so that it computes the same function; its gradient is not reported.
    """
    torch = _torch()
    F = torch.nn.functional
    n_hidden, n_vocab = params["U"].shape
    dtype = torch.float64 if params["W"].dtype == np.float64 else torch.float32
    cell = torch.nn.RNN(n_vocab, n_hidden, nonlinearity="tanh").to(dtype)
    out = torch.nn.Linear(n_hidden, n_vocab).to(dtype)
    with torch.no_grad():
        cell.weight_ih_l0.copy_(torch.from_numpy(params["U"]))
        cell.weight_hh_l0.copy_(torch.from_numpy(params["W"]))
        cell.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        cell.bias_hh_l0.zero_()
        out.weight.copy_(torch.from_numpy(params["V"]))
        out.bias.copy_(torch.from_numpy(params["c"]))
    tensors = {"U": cell.weight_ih_l0, "W": cell.weight_hh_l0, "V": out.weight,
               "b": cell.bias_ih_l0, "c": out.bias}
    one_hot = F.one_hot(torch.from_numpy(xs), n_vocab).to(dtype)     # (T, B, V): nn.RNN's input
    targets = torch.from_numpy(ys.reshape(-1))
    batch = xs.shape[1]

    def run():
        cell.bias_hh_l0.grad = None
        hs, _ = cell(one_hot)                                         # (T, B, H)
        logits = out(hs).reshape(-1, n_vocab)
        loss = F.cross_entropy(logits, targets, reduction="sum") / batch
        loss.backward()
        return _torch_result(loss, tensors)
    return run


def hips_loop(params, xs, ys):
    """A runner for the per-step HIPS autograd Elman RNN (same arguments and result as torch_loop)."""
    import autograd
    import autograd.numpy as anp
    from autograd.tracer import getval

    batch = xs.shape[1]
    rows = np.arange(batch)

    def loss_of(p):
        U, W, V, b, c = (p[k] for k in "UWVbc")
        h = np.zeros((batch, W.shape[0]), W.dtype)
        loss = 0.0
        for x, y in zip(xs, ys):
            h = anp.tanh(b + anp.dot(h, W.T) + U[:, x].T)
            o = c + anp.dot(h, V.T)
            m = np.max(getval(o), axis=1, keepdims=True)   # a constant shift: exact without its vjp
            logp = o - m - anp.log(anp.sum(anp.exp(o - m), axis=1, keepdims=True))
            loss = loss - anp.sum(logp[rows, y]) / batch
        return loss

    value_and_grad = autograd.value_and_grad(loss_of)
    return lambda: value_and_grad(params)


def _maker(module, form):
    def make(n_vocab, n_hidden, xs, ys, dtype):
        """A zero-argument runner (one forward + backward) at this config, or None if ``module``
        cannot be imported."""
        if not importable(module):
            return None
        return form(ne.init_params(n_vocab, n_hidden, seed=0, dtype=dtype), xs, ys)
    return make


PEERS = {"torch loop": ("torch", torch_loop), "torch nn.RNN": ("torch", torch_rnn),
         "HIPS autograd": ("autograd", hips_loop)}
MAKERS = {name: _maker(module, form) for name, (module, form) in PEERS.items()}
