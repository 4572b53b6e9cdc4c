"""Hand-written numpy forward + BPTT for the Elman RNN (figure 10.3), the yardstick of the benchmarks.

Two forms of the same computation, with the contract's conventions (ids in, rows are the batch):
a(t) = b + h(t-1) W^T + x(t) U^T (x one-hot, so x(t) U^T = U[:, ids]^T), h(t) = tanh(a(t)),
o(t) = c + h(t) V^T, loss = sum_t mean_b CE(o(t), y(t)).

* :func:`per_step` does every op once per time step, forward and backward, as an unrolled DAG
  does: the floor for an engine that makes one node per op and step.
* :func:`batched` keeps only the recurrence in a loop; the input projection, the output layer,
  the softmax/cross-entropy and the weight-gradient sums are done for all steps at once: the
  fastest plain numpy can do.

Both return ``(loss, grads)`` with ``grads`` a dict name -> array for "U", "W", "V", "b", "c".
"""

import numpy as np


def init_params(n_vocab, n_hidden, seed=0, dtype=np.float64):
    """Weights ~ N(0, 1/fan_in), biases zero: U (H, V), W (H, H), V (V, H), b (H,), c (V,)."""
    rng = np.random.default_rng(seed)
    return {
        "U": rng.normal(0.0, 1.0 / np.sqrt(n_vocab), (n_hidden, n_vocab)).astype(dtype),
        "W": rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_hidden)).astype(dtype),
        "V": rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_vocab, n_hidden)).astype(dtype),
        "b": np.zeros(n_hidden, dtype),
        "c": np.zeros(n_vocab, dtype),
    }


def make_data(n_vocab, steps, batch, seed=0):
    """Random input and target ids, each of shape (steps, batch)."""
    rng = np.random.default_rng(seed + 1)
    return (rng.integers(0, n_vocab, (steps, batch)), rng.integers(0, n_vocab, (steps, batch)))


def _log_softmax(o):
    m = o.max(axis=-1, keepdims=True)
    z = o - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def per_step(params, xs, ys, h0=None):
    """Forward and BPTT one op per time step.

    params : dict from :func:`init_params`; xs, ys : int ids (T, B); h0 : (B, H) or None (zeros).
    Returns (loss, grads).
    """
    U, W, V, b, c = (params[k] for k in "UWVbc")
    steps, batch = xs.shape
    rows = np.arange(batch)
    h = np.zeros((batch, W.shape[0]), W.dtype) if h0 is None else h0
    hs, probs = [h], []
    loss = 0.0
    for t in range(steps):
        a = U[:, xs[t]].T + h @ W.T + b
        h = np.tanh(a)
        o = h @ V.T + c
        logp = _log_softmax(o)
        loss += -logp[rows, ys[t]].sum() / batch
        hs.append(h)
        probs.append(np.exp(logp))
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros_like(h)
    for t in reversed(range(steps)):
        do = probs[t]
        do[rows, ys[t]] -= 1
        do /= batch
        h, h_prev = hs[t + 1], hs[t]
        grads["V"] += do.T @ h
        grads["c"] += do.sum(axis=0)
        da = (do @ V + dh_next) * (1 - h * h)
        grads["W"] += da.T @ h_prev
        grads["b"] += da.sum(axis=0)
        np.add.at(grads["U"].T, xs[t], da)
        dh_next = da @ W
    return loss, grads


def batched(params, xs, ys, h0=None):
    """Forward and BPTT with only the recurrence in a loop (same arguments and result as per_step)."""
    U, W, V, b, c = (params[k] for k in "UWVbc")
    steps, batch = xs.shape
    n_hidden = W.shape[0]
    hs = np.empty((steps + 1, batch, n_hidden), W.dtype)
    hs[0] = 0 if h0 is None else h0
    a = U.T[xs] + b                                   # (T, B, H): every input projection at once
    wt = W.T
    for t in range(steps):
        np.tanh(a[t] + hs[t] @ wt, out=hs[t + 1])
    h = hs[1:]
    logp = _log_softmax(h @ V.T + c)                  # (T, B, n_out)
    flat_y = ys.reshape(-1)
    flat_logp = logp.reshape(-1, logp.shape[-1])
    picked = flat_logp[np.arange(flat_y.size), flat_y]
    loss = -picked.sum() / batch
    do = np.exp(flat_logp)
    do[np.arange(flat_y.size), flat_y] -= 1
    do /= batch                                       # (T*B, n_out)
    flat_h = h.reshape(-1, n_hidden)
    grads = {"V": do.T @ flat_h, "c": do.sum(axis=0)}
    dh = (do @ V).reshape(steps, batch, n_hidden)     # gradient reaching h(t) from o(t)
    dh *= 1 - h * h                                   # now d/da(t) without the recurrent part
    da_next = np.zeros((batch, n_hidden), W.dtype)
    for t in reversed(range(steps)):
        dh[t] += (da_next @ W) * (1 - h[t] * h[t])
        da_next = dh[t]
    da = dh.reshape(-1, n_hidden)
    grads["W"] = da.T @ hs[:-1].reshape(-1, n_hidden)
    grads["b"] = da.sum(axis=0)
    gu_t = np.zeros((U.shape[1], n_hidden), U.dtype)
    np.add.at(gu_t, xs.reshape(-1), da)
    grads["U"] = gu_t.T
    return loss, grads
