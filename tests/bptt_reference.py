"""Independent oracle: hand-written back-propagation through time in plain numpy.

Each function below runs one recurrent design of *Deep Learning* chapter 10 forward
and then backward with the chapter's own gradient recursions (eqs. 10.17-10.28),
written out step by step and generalised per design; it imports nothing from
tinygraph or rnn, so the tests that compare the engine's generic backprop over the
unrolled DAG against it are comparing two independent computations. Integer ids are
turned into dense one-hot vectors here (the models use index selection instead).
Everything is batched internally: unbatched inputs are a batch of one, which leaves
the loss (sum over time of the batch-mean cross-entropy) and its gradients unchanged.
Rows are examples, so the book's ``W h(t-1)`` reads ``h(t-1) @ W.T``.
"""

import numpy as np


def one_hot(ids, n):
    """Dense one-hot vectors: ids (...) ints -> (..., n) floats."""
    ids = np.asarray(ids)
    return (ids[..., None] == np.arange(n)).astype(np.float64)


def softmax(o):
    """Softmax over the last axis of o (..., C)."""
    e = np.exp(o - o.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy_rows(o, y):
    """Per-row cross-entropy -log softmax(o)[y]: o (B, C), y (B,) ints -> (B,)."""
    shifted = o - o.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -log_p[np.arange(len(y)), y]


def as_step_inputs(xs, n_in):
    """Inputs of every step as dense batched vectors (T, B, n_in).

    xs: ids (T,) or (T, B), or floats (T, n_in) or (T, B, n_in).
    """
    xs = np.asarray(xs)
    if xs.dtype.kind in "iu":
        return one_hot(xs if xs.ndim == 2 else xs[:, None], n_in)
    xs = xs.astype(np.float64)
    return xs if xs.ndim == 3 else xs[:, None, :]


def as_batched_targets(ys):
    """Targets as (T, B) ids: ys (T,) or (T, B)."""
    ys = np.asarray(ys)
    return ys if ys.ndim == 2 else ys[:, None]


def previous_targets(ys, n_out):
    """one-hot y(t-1) for t = 1..T with y(0) = the zero vector: ys (T, B) -> (T, B, n_out)."""
    prev = np.zeros(ys.shape + (n_out,))
    prev[1:] = one_hot(ys[:-1], n_out)
    return prev


def _initial_state(h0, batch, n_hidden):
    if h0 is None:
        return np.zeros((batch, n_hidden))
    h0 = np.asarray(h0, dtype=np.float64)
    return np.broadcast_to(h0, (batch, n_hidden)).copy()


def tanh_recurrence(params, drives, ys, h0=None, mask=None, last_only=False):
    """Forward and BPTT of the hidden-to-hidden family (Elman, seq->one, vec->seq, conditional).

    a(t) = b + h(t-1) @ W.T + sum_k drives[k][t] @ params[k].T,  h(t) = tanh(a(t)),
    o(t) = c + h(t) @ V.T,  L = sum_t (1/B) sum_b mask[t, b] * CE(o(t)_b, y(t)_b).
    Where mask is 0 the state is carried unchanged: h(t) = h(t-1).
    With ``last_only`` only the last step has a loss (sequence -> one).

    params : dict with "W" (H, H), "V" (C, H), "b" (H,), "c" (C,) and one matrix (H, n_k) per drive.
    drives : dict name -> (T, B, n_k) dense inputs of every step.
    ys : (T, B) target ids (only ys[-1] is used with last_only).
    h0 : None, (H,) or (B, H).  mask : None or (T, B) of 0/1.
    Returns (loss, grads): grads is keyed like params, plus "h0" (the gradient of the
    initial state, shaped like h0; (B, H) when h0 is None).
    """
    W, V, b, c = (np.asarray(params[k], dtype=np.float64) for k in ("W", "V", "b", "c"))
    T, B = ys.shape
    H = W.shape[0]
    mask = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=np.float64)
    weights = mask / B                       # d loss / d CE_b(t)
    if last_only:
        weights = np.zeros((T, B))
        weights[-1] = 1.0 / B

    h = [_initial_state(h0, B, H)]           # h[t] is h(t); h[0] the initial state
    cand = [None]                            # tanh(a(t)) before masking
    loss = 0.0
    probs = [None]
    for t in range(1, T + 1):
        a = b + h[t - 1] @ W.T
        for name, x in drives.items():
            a = a + x[t - 1] @ np.asarray(params[name], dtype=np.float64).T
        cand.append(np.tanh(a))
        m = mask[t - 1][:, None]
        h.append(m * cand[t] + (1.0 - m) * h[t - 1])
        o = c + h[t] @ V.T
        probs.append(softmax(o))
        if weights[t - 1].any():
            loss += float(weights[t - 1] @ cross_entropy_rows(o, ys[t - 1]))

    grads = {name: np.zeros_like(np.asarray(p, dtype=np.float64)) for name, p in params.items()}
    C = V.shape[0]
    grad_h_future = np.zeros((B, H))         # W^T diag(1 - h(t+1)^2) grad_h(t+1), eq. 10.21
    for t in range(T, 0, -1):
        grad_o = weights[t - 1][:, None] * (probs[t] - one_hot(ys[t - 1], C))      # eq. 10.18
        grads["c"] += grad_o.sum(axis=0)                                            # eq. 10.22
        grads["V"] += grad_o.T @ h[t]                                               # eq. 10.24
        grad_h = grad_h_future + grad_o @ V                                         # eqs. 10.19-10.21
        m = mask[t - 1][:, None]
        grad_a = m * grad_h * (1.0 - cand[t] ** 2)                                  # diag(1 - h(t)^2)
        grads["b"] += grad_a.sum(axis=0)                                            # eq. 10.23
        grads["W"] += grad_a.T @ h[t - 1]                                           # eq. 10.26
        for name, x in drives.items():
            grads[name] += grad_a.T @ x[t - 1]                                      # eq. 10.28
        grad_h_future = grad_a @ W + (1.0 - m) * grad_h
    grads["h0"] = grad_h_future if h0 is None or np.ndim(h0) == 2 else grad_h_future.sum(axis=0)
    return loss, grads


def elman(params, xs, ys, h0=None, mask=None):
    """Figure 10.3: params U (H, n_in), W (H, H), V (C, H), b, c. Returns (loss, grads)."""
    x = as_step_inputs(xs, np.shape(params["U"])[1])
    return tanh_recurrence(params, {"U": x}, as_batched_targets(ys), h0=h0, mask=mask)


def sequence_to_one(params, xs, y, h0=None):
    """Figure 10.5: Elman's parameters, one loss CE(c + V h(tau), y) at the end; y () or (B,)."""
    x = as_step_inputs(xs, np.shape(params["U"])[1])
    ys = np.zeros((x.shape[0], x.shape[1]), dtype=np.int64)
    ys[-1] = np.asarray(y).reshape(-1)
    return tanh_recurrence(params, {"U": x}, ys, h0=h0, last_only=True)


def vector_to_sequence(params, x, ys, h0=None):
    """Figure 10.9: a(t) = b + W h(t-1) + R x + U onehot(y(t-1)), y(0) = 0; x (n_in,) or (B, n_in)."""
    ys = as_batched_targets(ys)
    T, B = ys.shape
    x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(params["R"])[1])
    static = np.broadcast_to(x, (T, B, x.shape[1]))
    n_out = np.shape(params["U"])[1]
    return tanh_recurrence(params, {"R": static, "U": previous_targets(ys, n_out)}, ys, h0=h0)


def conditional(params, xs, ys, h0=None):
    """Figure 10.10: a(t) = b + W h(t-1) + U x(t) + R onehot(y(t-1)), y(0) = 0."""
    x = as_step_inputs(xs, np.shape(params["U"])[1])
    ys = as_batched_targets(ys)
    n_out = np.shape(params["R"])[1]
    return tanh_recurrence(params, {"U": x, "R": previous_targets(ys, n_out)}, ys, h0=h0)


def jordan(params, xs, ys, teacher_forcing=True):
    """Figure 10.4/10.6: h(t) = tanh(b + W f(t-1) + U x(t)), o(t) = c + V h(t), f(0) = 0.

    Teacher forcing: f(t-1) = onehot(y(t-1)), so the steps decouple. Free running:
    f(t-1) = softmax(o(t-1)), and the gradient of o(t) also flows back through that
    softmax into step t+1.  params U (H, n_in), W (H, C), V (C, H), b, c. Returns (loss, grads).
    """
    U, W, V, b, c = (np.asarray(params[k], dtype=np.float64) for k in ("U", "W", "V", "b", "c"))
    x = as_step_inputs(xs, U.shape[1])
    ys = as_batched_targets(ys)
    T, B = ys.shape
    C = V.shape[0]
    f = list(previous_targets(ys, C)) if teacher_forcing else [np.zeros((B, C))]   # f[t-1] feeds step t
    h = [None]
    probs = [None]
    loss = 0.0
    for t in range(1, T + 1):
        h.append(np.tanh(b + f[t - 1] @ W.T + x[t - 1] @ U.T))
        o = c + h[t] @ V.T
        probs.append(softmax(o))
        loss += float(cross_entropy_rows(o, ys[t - 1]).mean())
        if not teacher_forcing:
            f.append(probs[t])

    grads = {k: np.zeros_like(np.asarray(params[k], dtype=np.float64)) for k in ("U", "W", "V", "b", "c")}
    grad_f_future = np.zeros((B, C))         # d L / d f(t), from step t+1
    for t in range(T, 0, -1):
        grad_o = (probs[t] - one_hot(ys[t - 1], C)) / B
        if not teacher_forcing:              # f(t) = softmax(o(t)): its Jacobian diag(p) - p p^T
            p = probs[t]
            grad_o = grad_o + p * (grad_f_future - (grad_f_future * p).sum(axis=1, keepdims=True))
        grads["c"] += grad_o.sum(axis=0)
        grads["V"] += grad_o.T @ h[t]
        grad_a = (grad_o @ V) * (1.0 - h[t] ** 2)
        grads["b"] += grad_a.sum(axis=0)
        grads["W"] += grad_a.T @ f[t - 1]
        grads["U"] += grad_a.T @ x[t - 1]
        grad_f_future = grad_a @ W
    return loss, grads


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _gated_loss_grads(ys, mask, V, c, hs):
    """Output layer o(t) = c + h(t) @ V.T of a gated cell: (loss, grad_o per step, weights)."""
    T, B = ys.shape
    weights = mask / B
    loss, grad_o = 0.0, []
    for t in range(T):
        o = c + hs[t] @ V.T
        loss += float(weights[t] @ cross_entropy_rows(o, ys[t]))
        grad_o.append(weights[t][:, None] * (softmax(o) - one_hot(ys[t], V.shape[0])))
    return loss, grad_o


def lstm(params, xs, ys, h0=None, s0=None, mask=None):
    """Eqs. 10.40-10.44 with a tanh input unit, forward and BPTT, rows as examples.

    f(t) = sig(bf + x Uf.T + h(t-1) Wf.T) (forget), g(t) = sig(bg + ...) (input gate),
    q(t) = sig(bo + x Uo.T + h(t-1) Wo.T) (output gate), z(t) = tanh(b + x U.T + h(t-1) W.T),
    s(t) = f s(t-1) + g z, h(t) = tanh(s(t)) q, o(t) = c + h(t) V.T; masked steps carry s and h.
    params : Uf Ug Uo U (H, n_in), Wf Wg Wo W (H, H), bf bg bo b (H,), V (C, H), c (C,).
    Returns (loss, grads) with grads keyed like params.
    """
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = as_step_inputs(xs, P["U"].shape[1])
    ys = as_batched_targets(ys)
    T, B = ys.shape
    H = P["W"].shape[0]
    mask = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=np.float64)
    gates = (("f", "Uf", "Wf", "bf"), ("g", "Ug", "Wg", "bg"), ("q", "Uo", "Wo", "bo"))
    h, s, saved = [_initial_state(h0, B, H)], [_initial_state(s0, B, H)], []
    for t in range(T):
        act = {n: sigmoid(P[b] + x[t] @ P[u].T + h[-1] @ P[w].T) for n, u, w, b in gates}
        z = np.tanh(P["b"] + x[t] @ P["U"].T + h[-1] @ P["W"].T)
        s_new = act["f"] * s[-1] + act["g"] * z
        h_new = np.tanh(s_new) * act["q"]
        m = mask[t][:, None]
        saved.append((act, z, s_new))
        s.append(m * s_new + (1 - m) * s[-1])
        h.append(m * h_new + (1 - m) * h[-1])
    loss, grad_o = _gated_loss_grads(ys, mask, P["V"], P["c"], h[1:])
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    dh_future, ds_future = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        act, z, s_new = saved[t]
        m = mask[t][:, None]
        grads["c"] += grad_o[t].sum(axis=0)
        grads["V"] += grad_o[t].T @ h[t + 1]
        dh = dh_future + grad_o[t] @ P["V"]
        dh_new, ds_new = m * dh, m * ds_future
        ds_new = ds_new + dh_new * act["q"] * (1 - np.tanh(s_new) ** 2)
        d_pre = {"q": dh_new * np.tanh(s_new) * act["q"] * (1 - act["q"]),
                 "f": ds_new * s[t] * act["f"] * (1 - act["f"]),
                 "g": ds_new * z * act["g"] * (1 - act["g"])}
        dz = ds_new * act["g"] * (1 - z ** 2)
        dh_prev = (1 - m) * dh + dz @ P["W"]
        for n, u, w, b in gates:
            grads[u] += d_pre[n].T @ x[t]
            grads[w] += d_pre[n].T @ h[t]
            grads[b] += d_pre[n].sum(axis=0)
            dh_prev += d_pre[n] @ P[w]
        grads["U"] += dz.T @ x[t]
        grads["W"] += dz.T @ h[t]
        grads["b"] += dz.sum(axis=0)
        dh_future = dh_prev
        ds_future = ds_new * act["f"] + (1 - m) * ds_future
    return loss, grads


def gru(params, xs, ys, h0=None, mask=None):
    """The GRU as SPEC.md reads eqs. 10.45-10.47, forward and BPTT, rows as examples.

    u(t) = sig(bu + x Uu.T + h(t-1) Wu.T), r(t) = sig(br + x Ur.T + h(t-1) Wr.T),
    z(t) = tanh(b + x U.T + (r h(t-1)) W.T), h(t) = u h(t-1) + (1 - u) z, o(t) = c + h(t) V.T.
    params : Uu Ur U (H, n_in), Wu Wr W (H, H), bu br b (H,), V (C, H), c (C,).
    """
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = as_step_inputs(xs, P["U"].shape[1])
    ys = as_batched_targets(ys)
    T, B = ys.shape
    H = P["W"].shape[0]
    mask = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=np.float64)
    h, saved = [_initial_state(h0, B, H)], []
    for t in range(T):
        u = sigmoid(P["bu"] + x[t] @ P["Uu"].T + h[-1] @ P["Wu"].T)
        r = sigmoid(P["br"] + x[t] @ P["Ur"].T + h[-1] @ P["Wr"].T)
        z = np.tanh(P["b"] + x[t] @ P["U"].T + (r * h[-1]) @ P["W"].T)
        m = mask[t][:, None]
        saved.append((u, r, z))
        h.append(m * (u * h[-1] + (1 - u) * z) + (1 - m) * h[-1])
    loss, grad_o = _gated_loss_grads(ys, mask, P["V"], P["c"], h[1:])
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    dh_future = np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        u, r, z = saved[t]
        m = mask[t][:, None]
        grads["c"] += grad_o[t].sum(axis=0)
        grads["V"] += grad_o[t].T @ h[t + 1]
        dh = dh_future + grad_o[t] @ P["V"]
        dh_new = m * dh
        dz = dh_new * (1 - u) * (1 - z ** 2)
        du = dh_new * (h[t] - z) * u * (1 - u)
        d_rh = dz @ P["W"]
        dr = d_rh * h[t] * r * (1 - r)
        grads["U"] += dz.T @ x[t]
        grads["W"] += dz.T @ (r * h[t])
        grads["b"] += dz.sum(axis=0)
        for d, k in ((du, "u"), (dr, "r")):
            grads["U" + k] += d.T @ x[t]
            grads["W" + k] += d.T @ h[t]
            grads["b" + k] += d.sum(axis=0)
        dh_future = ((1 - m) * dh + dh_new * u + d_rh * r + du @ P["Wu"] + dr @ P["Wr"])
    return loss, grads


def finite_difference_grads(loss_fn, params, eps=1e-6):
    """Central differences of loss_fn(params) -> float with respect to every entry of every param."""
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value, dtype=np.float64)
        for idx in np.ndindex(value.shape):
            shifted = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
            shifted[name][idx] = value[idx] + eps
            up = loss_fn(shifted)
            shifted[name][idx] = value[idx] - eps
            g[idx] = (up - loss_fn(shifted)) / (2 * eps)
        grads[name] = g
    return grads
