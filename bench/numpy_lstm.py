"""A hand-written per-step numpy LSTM (eqs. 10.40-10.44, tanh input unit): the yardstick of a user's
LSTM cell in ``bench/designs.py``.

The four gate blocks are stacked as numpy users write them: ``Ux`` (4H, V), ``Wh`` (4H, H) and
``b`` (4H,) in the order forget f, input gate g, output gate q, input unit z, so one step is one
matrix product, then s(t) = f s(t-1) + g z, h(t) = tanh(s(t)) q, o(t) = c + V h(t) and the
cross-entropy, every op once per time step forward and backward.  Ids in, rows are the batch.
:func:`per_step` returns ``(loss, grads)`` with grads keyed like the parameters.
"""

import numpy as np


def init_params(n_vocab, n_hidden, seed=0, dtype=np.float64):
    """Ux (4H, V), Wh (4H, H), V (V, H) ~ N(0, 1/fan_in); b (4H,), c (V,) zero."""
    rng = np.random.default_rng(seed)
    return {
        "Ux": rng.normal(0.0, 1.0 / np.sqrt(n_vocab), (4 * n_hidden, n_vocab)).astype(dtype),
        "Wh": rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (4 * n_hidden, n_hidden)).astype(dtype),
        "b": np.zeros(4 * n_hidden, dtype),
        "V": rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_vocab, n_hidden)).astype(dtype),
        "c": np.zeros(n_vocab, dtype),
    }


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def per_step(params, xs, ys):
    """Forward and BPTT one op per time step; xs, ys int ids (T, B).  Returns (loss, grads)."""
    Ux, Wh, b, V, c = (params[k] for k in ("Ux", "Wh", "b", "V", "c"))
    steps, batch = xs.shape
    H = Wh.shape[1]
    rows = np.arange(batch)
    h = np.zeros((batch, H), Wh.dtype)
    s = np.zeros((batch, H), Wh.dtype)
    saved, loss = [], 0.0
    for t in range(steps):
        z = Ux[:, xs[t]].T + h @ Wh.T + b
        gates = _sigmoid(z[:, :3 * H])
        f, g, q = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        unit = np.tanh(z[:, 3 * H:])
        s_prev, h_prev = s, h
        s = f * s_prev + g * unit
        tanh_s = np.tanh(s)
        h = tanh_s * q
        o = h @ V.T + c
        m = o.max(axis=1, keepdims=True)
        e = np.exp(o - m)
        total = e.sum(axis=1, keepdims=True)
        loss += float((np.log(total[:, 0]) + m[:, 0] - o[rows, ys[t]]).sum()) / batch
        saved.append((h_prev, s_prev, gates, unit, tanh_s, h, e / total))

    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next = np.zeros((batch, H), Wh.dtype)
    ds_next = np.zeros((batch, H), Wh.dtype)
    for t in range(steps - 1, -1, -1):
        h_prev, s_prev, gates, unit, tanh_s, h, p = saved[t]
        do = p.copy()
        do[rows, ys[t]] -= 1.0
        do /= batch
        grads["c"] += do.sum(axis=0)
        grads["V"] += do.T @ h
        dh = dh_next + do @ V
        f, g, q = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        ds = ds_next + dh * q * (1.0 - tanh_s * tanh_s)
        dz = np.empty((batch, 4 * H), Wh.dtype)
        dz[:, :H] = ds * s_prev
        dz[:, H:2 * H] = ds * unit
        dz[:, 2 * H:3 * H] = dh * tanh_s
        dz[:, :3 * H] *= gates * (1.0 - gates)
        dz[:, 3 * H:] = ds * g * (1.0 - unit * unit)
        grads["b"] += dz.sum(axis=0)
        grads["Wh"] += dz.T @ h_prev
        np.add.at(grads["Ux"].T, xs[t], dz)
        dh_next = dz @ Wh
        ds_next = ds * f
    return loss, grads
