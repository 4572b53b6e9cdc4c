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


def _prepared(params, xs, ys, mask):
    """float64 params, dense batched inputs (T, B, n_in), targets (T, B) and a (T, B) mask."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    ys = as_batched_targets(ys)
    mask = np.ones(ys.shape) if mask is None else np.asarray(mask, dtype=np.float64)
    return P, as_step_inputs(xs, P["U"].shape[1]), ys, mask


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


def _squash(name):
    """The candidate's nonlinearity and its derivative written through its value."""
    if name == "sigmoid":
        return sigmoid, lambda z: z * (1 - z)
    return np.tanh, lambda z: 1 - z ** 2


def lstm(params, xs, ys, h0=None, s0=None, mask=None, candidate="tanh"):
    """Eqs. 10.40-10.44 with a tanh input unit (or ``candidate="sigmoid"``, the book's printed
    one), forward and BPTT, rows as examples.

    f(t) = sig(bf + x Uf.T + h(t-1) Wf.T) (forget), g(t) = sig(bg + ...) (input gate),
    q(t) = sig(bo + x Uo.T + h(t-1) Wo.T) (output gate), z(t) = tanh(b + x U.T + h(t-1) W.T),
    s(t) = f s(t-1) + g z, h(t) = tanh(s(t)) q, o(t) = c + h(t) V.T; masked steps carry s and h.
    params : Uf Ug Uo U (H, n_in), Wf Wg Wo W (H, H), bf bg bo b (H,), V (C, H), c (C,).
    Returns (loss, grads) with grads keyed like params.
    """
    P, x, ys, mask = _prepared(params, xs, ys, mask)
    T, B = ys.shape
    H = P["W"].shape[0]
    gates = (("f", "Uf", "Wf", "bf"), ("g", "Ug", "Wg", "bg"), ("q", "Uo", "Wo", "bo"))
    squash, squash_grad = _squash(candidate)
    h, s, saved = [_initial_state(h0, B, H)], [_initial_state(s0, B, H)], []
    for t in range(T):
        act = {n: sigmoid(P[b] + x[t] @ P[u].T + h[-1] @ P[w].T) for n, u, w, b in gates}
        z = squash(P["b"] + x[t] @ P["U"].T + h[-1] @ P["W"].T)
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
        dz = ds_new * act["g"] * squash_grad(z)
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


def gru(params, xs, ys, h0=None, mask=None, candidate="tanh"):
    """The GRU as SPEC.md reads eqs. 10.45-10.47, forward and BPTT, rows as examples.

    u(t) = sig(bu + x Uu.T + h(t-1) Wu.T), r(t) = sig(br + x Ur.T + h(t-1) Wr.T),
    z(t) = tanh(b + x U.T + (r h(t-1)) W.T), h(t) = u h(t-1) + (1 - u) z, o(t) = c + h(t) V.T.
    params : Uu Ur U (H, n_in), Wu Wr W (H, H), bu br b (H,), V (C, H), c (C,).
    """
    P, x, ys, mask = _prepared(params, xs, ys, mask)
    T, B = ys.shape
    H = P["W"].shape[0]
    squash, squash_grad = _squash(candidate)
    h, saved = [_initial_state(h0, B, H)], []
    for t in range(T):
        u = sigmoid(P["bu"] + x[t] @ P["Uu"].T + h[-1] @ P["Wu"].T)
        r = sigmoid(P["br"] + x[t] @ P["Ur"].T + h[-1] @ P["Wr"].T)
        z = squash(P["b"] + x[t] @ P["U"].T + (r * h[-1]) @ P["W"].T)
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
        dz = dh_new * (1 - u) * squash_grad(z)
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


def _tanh_chain(x, U, W, b, h0, mask):
    """One tanh chain forward: h(t) = m tanh(b + h(t-1) W.T + x(t) U.T) + (1 - m) h(t-1).

    x (T, B, n), mask (T, B).  Returns (h, cand): h (T+1, B, H) with h[0] = h0, and the
    tanh values before masking (T, B, H)."""
    T, B = mask.shape
    h, cand = [h0], []
    for t in range(T):
        cand.append(np.tanh(b + h[-1] @ W.T + x[t] @ U.T))
        m = mask[t][:, None]
        h.append(m * cand[-1] + (1 - m) * h[-1])
    return np.stack(h), np.stack(cand)


def _tanh_chain_bptt(grad_h_out, x, U, W, h, cand, mask):
    """BPTT through one tanh chain (eqs. 10.20-10.28): ``grad_h_out`` (T, B, H) is what reaches
    each h(t) from outside the chain.  Returns (dU, dW, db, d h(0), d x (T, B, n))."""
    T, B = mask.shape
    dU, dW, db = np.zeros_like(U), np.zeros_like(W), 0.0
    dx = np.zeros_like(x)
    future = np.zeros_like(h[0])
    for t in range(T - 1, -1, -1):
        grad_h = grad_h_out[t] + future
        m = mask[t][:, None]
        grad_a = m * grad_h * (1 - cand[t] ** 2)
        dU += grad_a.T @ x[t]
        dW += grad_a.T @ h[t]
        db = db + grad_a.sum(axis=0)
        dx[t] = grad_a @ U
        future = grad_a @ W + (1 - m) * grad_h
    return dU, dW, db, future, dx


def _output_layer(states, V, c, ys, weights):
    """o(t) = c + states(t) V.T scored against ys: (loss, grad_o (T, B, C))."""
    loss, grad_o = 0.0, []
    for t in range(len(ys)):
        o = c + states[t] @ V.T
        loss += float(weights[t] @ cross_entropy_rows(o, ys[t]))
        grad_o.append(weights[t][:, None] * (softmax(o) - one_hot(ys[t], V.shape[0])))
    return loss, np.stack(grad_o)


def bidirectional(params, xs, ys, h0=None, g0=None, mask=None):
    """Figure 10.11: h(t) forward, g(t) = tanh(bg + g(t+1) Wg.T + x(t) Ug.T) backward in time
    (g(T+1) = g0), o(t) = c + [h(t); g(t)] V.T.  Masked steps carry each chain's state; the
    backward chain is the forward chain run on the time-reversed sequence.
    params : U Ug (H, n_in), W Wg (H, H), b bg (H,), V (C, 2H), c (C,).  Returns (loss, grads).
    """
    P, x, ys, mask = _prepared(params, xs, ys, mask)
    T, B = ys.shape
    H = P["W"].shape[0]
    h, h_cand = _tanh_chain(x, P["U"], P["W"], P["b"], _initial_state(h0, B, H), mask)
    g_rev, g_cand = _tanh_chain(x[::-1], P["Ug"], P["Wg"], P["bg"], _initial_state(g0, B, H),
                                mask[::-1])
    both = np.concatenate([h[1:], g_rev[1:][::-1]], axis=-1)          # [h(t); g(t)], t = 1..T
    loss, grad_o = _output_layer(both, P["V"], P["c"], ys, mask / B)
    grads = {"V": np.einsum("tbc,tbk->ck", grad_o, both), "c": grad_o.sum(axis=(0, 1))}
    grad_both = grad_o @ P["V"]
    grads["U"], grads["W"], grads["b"], _, _ = _tanh_chain_bptt(
        grad_both[..., :H], x, P["U"], P["W"], h, h_cand, mask)
    grads["Ug"], grads["Wg"], grads["bg"], _, _ = _tanh_chain_bptt(
        grad_both[..., H:][::-1], x[::-1], P["Ug"], P["Wg"], g_rev, g_cand, mask[::-1])
    return loss, grads


def encoder_decoder(params, xs, ys, start):
    """Figure 10.12: encoder h(t) = tanh(b + h(t-1) W.T + x(t) U.T), h(0) = 0, C = h(n_x);
    decoder s(0) = C, s(t) = tanh(bd + s(t-1) Wd.T + onehot(y(t-1)) Ud.T + C R.T) with
    y(0) = ``start``, o(t) = c + s(t) V.T; loss over the n_y decoder steps.
    params : U (H, n_in), W (H, H), b, Ud (H, n_out + 1), Wd, R (H, H), bd, V (C, H), c.
    """
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = as_step_inputs(xs, P["U"].shape[1])
    ys = as_batched_targets(ys)
    n_y, B = ys.shape
    H = P["W"].shape[0]
    ones_x = np.ones(x.shape[:2])
    h, h_cand = _tanh_chain(x, P["U"], P["W"], P["b"], np.zeros((B, H)), ones_x)
    C = h[-1]
    prev = np.concatenate([np.full((1, B), start), ys[:-1]]).astype(np.int64)
    y_in = one_hot(prev, P["Ud"].shape[1])
    drives = np.concatenate([y_in, np.broadcast_to(C, (n_y, B, H))], axis=-1)
    U_dec = np.concatenate([P["Ud"], P["R"]], axis=1)             # [Ud R] reads [y(t-1); C]
    s, s_cand = _tanh_chain(drives, U_dec, P["Wd"], P["bd"], C, np.ones((n_y, B)))
    loss, grad_o = _output_layer(s[1:], P["V"], P["c"], ys, np.full((n_y, B), 1.0 / B))
    grads = {"V": np.einsum("tbc,tbk->ck", grad_o, s[1:]), "c": grad_o.sum(axis=(0, 1))}
    dU_dec, grads["Wd"], grads["bd"], d_s0, d_drives = _tanh_chain_bptt(
        grad_o @ P["V"], drives, U_dec, P["Wd"], s, s_cand, np.ones((n_y, B)))
    n_start = P["Ud"].shape[1]
    grads["Ud"], grads["R"] = dU_dec[:, :n_start], dU_dec[:, n_start:]
    grad_h_out = np.zeros_like(h[1:])     # C = h(n_x) is s(0) and an input of every step
    grad_h_out[-1] = d_s0 + d_drives[..., n_start:].sum(axis=0)
    grads["U"], grads["W"], grads["b"], _, _ = _tanh_chain_bptt(grad_h_out, x, P["U"], P["W"],
                                                                h, h_cand, ones_x)
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


# ---------------------------------------------------------------- regression (squared error)
# The designs that feed their output back, with L(t) = (1/B) sum_b m(t, b) ||o_b(t) - y_b(t)||^2:
# the fed-back f(t-1) is the target vector y(t-1) itself under teacher forcing, or o(t-1)
# itself running free (no softmax), f(0) a zero vector or a given float y0.

def as_batched_vectors(ys):
    """Float targets as (T, B, K): ys (T, K) or (T, B, K)."""
    ys = np.asarray(ys, dtype=np.float64)
    return ys if ys.ndim == 3 else ys[:, None, :]


def _fed_back_chain(P, drive, ys, mask, h0, f0, free, fb, recurrent=True):
    """Forward and BPTT of a chain that reads its previous output, with the squared error.

    a(t) = b + drive(t) + f(t-1) P[fb].T (+ h(t-1) W.T when ``recurrent``), h(t) = tanh(a(t))
    where mask is 1, h(t-1) carried where it is 0; o(t) = c + h(t) V.T.  Teacher forcing:
    f(t-1) = y(t-1) (f(0) = f0).  Free running: f(t) = m o(t) + (1 - m) f(t-1) (a padded step
    carries what its sequence fed back last), so dL/do(t) also has the path through f(t).
    Without ``recurrent`` (Jordan) there is no state: h(t) = tanh(a(t)).

    P : "b", "V", "c", fb, and "W" when recurrent.  drive (T, B, H): the other inputs of a(t).
    ys (T, B, K), mask (T, B), h0 (B, H), f0 (B, K).
    Returns (loss, grads, d drive (T, B, H), d h0 (B, H), d f0 (B, K)).
    """
    T, B, K = ys.shape
    b, V, c, F = P["b"], P["V"], P["c"], P[fb]
    W = P["W"] if recurrent else None
    h, cand, fin, o = [h0], [], [], []
    f_prev = f0
    loss = 0.0
    for t in range(T):
        fin.append(f_prev if (free or t == 0) else ys[t - 1])
        a = b + drive[t] + fin[t] @ F.T + (h[t] @ W.T if recurrent else 0.0)
        cand.append(np.tanh(a))
        m = mask[t][:, None]
        h.append(m * cand[t] + (1 - m) * h[t] if recurrent else cand[t])
        o.append(c + h[t + 1] @ V.T)
        loss += float(mask[t] @ ((o[t] - ys[t]) ** 2).sum(axis=1)) / B
        if free:
            f_prev = m * o[t] + (1 - m) * f_prev
    grads = {k: np.zeros_like(P[k]) for k in ("b", "V", "c", fb) + (("W",) if recurrent else ())}
    d_drive = np.zeros((T, B, b.shape[0]))
    future_h = np.zeros_like(h0)           # dL/dh(t) through h(t+1)
    future_f = np.zeros((B, K))            # dL/df(t) through step t+1 (running free)
    d_f0 = np.zeros((B, K))
    for t in range(T - 1, -1, -1):
        m = mask[t][:, None]
        grad_o = 2.0 * m * (o[t] - ys[t]) / B
        if free:
            grad_o = grad_o + m * future_f
        grads["c"] += grad_o.sum(axis=0)
        grads["V"] += grad_o.T @ h[t + 1]
        grad_h = grad_o @ V + future_h
        grad_a = (m if recurrent else 1.0) * grad_h * (1 - cand[t] ** 2)
        grads["b"] += grad_a.sum(axis=0)
        grads[fb] += grad_a.T @ fin[t]
        d_drive[t] = grad_a
        grad_fin = grad_a @ F
        if recurrent:
            grads["W"] += grad_a.T @ h[t]
            future_h = grad_a @ W + (1 - m) * grad_h
        if free:
            future_f = grad_fin + (1 - m) * future_f
        elif t == 0:
            d_f0 = grad_fin
    if free:
        d_f0 = future_f
    return loss, grads, d_drive, future_h, d_f0


def _regression_inputs(xs, ys, mask, n_in):
    x = as_step_inputs(xs, n_in)
    ys = as_batched_vectors(ys)
    mask = np.ones(ys.shape[:2]) if mask is None else np.asarray(mask, dtype=np.float64)
    return x, ys, mask


def _start(value, B, size):
    return np.zeros((B, size)) if value is None else np.broadcast_to(
        np.asarray(value, dtype=np.float64), (B, size)).copy()


def jordan_regression(params, xs, ys, mask=None, y0=None, teacher_forcing=True):
    """Figure 10.4 with the squared error: h(t) = tanh(b + f(t-1) W.T + x(t) U.T),
    o(t) = c + h(t) V.T; f(t-1) = y(t-1) (teacher forcing) or o(t-1) (free), f(0) = y0 or 0.
    params U (H, n_in), W (H, K), V (K, H), b, c.  Returns (loss, grads); grads["y0"] is the
    gradient of f(0), (B, K)."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x, ys, mask = _regression_inputs(xs, ys, mask, P["U"].shape[1])
    B = ys.shape[1]
    loss, grads, d_drive, _, d_f0 = _fed_back_chain(
        P, x @ P["U"].T, ys, mask, np.zeros((B, P["b"].shape[0])), _start(y0, B, ys.shape[2]),
        not teacher_forcing, "W", recurrent=False)
    grads["U"] = np.einsum("tbh,tbn->hn", d_drive, x)
    grads["y0"] = d_f0
    return loss, grads


def conditional_regression(params, xs, ys, h0=None, mask=None, y0=None, free=False):
    """Figure 10.10 with the squared error: a(t) = b + h(t-1) W.T + x(t) U.T + f(t-1) R.T,
    f(t-1) = y(t-1) (teacher forcing) or o(t-1) (``free``), f(0) = y0 or 0.
    params U (H, n_in), W (H, H), R (H, K), V (K, H), b, c.  Returns (loss, grads) with
    grads["h0"] and grads["y0"] (B, ...)."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x, ys, mask = _regression_inputs(xs, ys, mask, P["U"].shape[1])
    B = ys.shape[1]
    H = P["W"].shape[0]
    loss, grads, d_drive, d_h0, d_f0 = _fed_back_chain(
        P, x @ P["U"].T, ys, mask, _initial_state(h0, B, H), _start(y0, B, ys.shape[2]), free,
        "R")
    grads["U"] = np.einsum("tbh,tbn->hn", d_drive, x)
    grads["h0"], grads["y0"] = d_h0, d_f0
    return loss, grads


def vector_to_sequence_regression(params, x, ys, h0=None, free=False):
    """Figure 10.9 with the squared error: a(t) = b + h(t-1) W.T + x R.T + f(t-1) U.T,
    f(0) = 0, f(t-1) = y(t-1) or o(t-1) (``free``); with a "Q" in params h(0) = tanh(x Q.T).
    params R (H, n_in), W (H, H), U (H, K), V (K, H), b, c (and Q (H, n_in)); x (n_in,) or
    (B, n_in).  Returns (loss, grads)."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    ys = as_batched_vectors(ys)
    T, B, K = ys.shape
    H = P["W"].shape[0]
    x = np.broadcast_to(np.asarray(x, dtype=np.float64).reshape(-1, P["R"].shape[1]),
                        (B, P["R"].shape[1]))
    start = np.tanh(x @ P["Q"].T) if "Q" in P else _initial_state(h0, B, H)
    loss, grads, d_drive, d_h0, _ = _fed_back_chain(
        P, np.broadcast_to(x @ P["R"].T, (T, B, H)), ys, np.ones((T, B)), start,
        np.zeros((B, K)), free, "U")
    grads["R"] = d_drive.sum(axis=0).T @ x
    if "Q" in P:
        grads["Q"] = (d_h0 * (1 - start ** 2)).T @ x
    return loss, grads


def encoder_decoder_regression(params, xs, ys, mask=None, free=False):
    """Figure 10.12 with the squared error: the encoder h(t) = tanh(b + h(t-1) W.T + x(t) U.T)
    (masked steps carry h), C = h(n_x); the decoder s(0) = C,
    s(t) = tanh(bd + s(t-1) Wd.T + f(t-1) Ud.T + C R.T), f(0) = 0 (no start symbol),
    f(t-1) = y(t-1) or o(t-1) (``free``), o(t) = c + s(t) V.T.
    params U (H, n_in), W (H, H), b, Ud (H, K), Wd (H, H), R (H, H), bd, V (K, H), c;
    mask (n_x, B) of the source.  Returns (loss, grads)."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x, ys, _ = _regression_inputs(xs, ys, None, P["U"].shape[1])
    n_y, B, K = ys.shape
    H = P["W"].shape[0]
    source = np.ones(x.shape[:2]) if mask is None else np.asarray(mask, dtype=np.float64)
    h, h_cand = _tanh_chain(x, P["U"], P["W"], P["b"], np.zeros((B, H)), source)
    C = h[-1]
    dec = {"b": P["bd"], "W": P["Wd"], "V": P["V"], "c": P["c"], "Ud": P["Ud"]}
    loss, g, d_drive, d_s0, _ = _fed_back_chain(
        dec, np.broadcast_to(C @ P["R"].T, (n_y, B, H)), ys, np.ones((n_y, B)), C,
        np.zeros((B, K)), free, "Ud")
    grads = {"bd": g["b"], "Wd": g["W"], "V": g["V"], "c": g["c"], "Ud": g["Ud"],
             "R": d_drive.sum(axis=0).T @ C}
    grad_h_out = np.zeros_like(h[1:])      # C = h(n_x) is s(0) and an input of every step
    grad_h_out[-1] = d_s0 + d_drive.sum(axis=0) @ P["R"]
    grads["U"], grads["W"], grads["b"], _, _ = _tanh_chain_bptt(grad_h_out, x, P["U"], P["W"],
                                                                h, h_cand, source)
    return loss, grads
