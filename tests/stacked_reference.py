"""Independent oracle for ElmanRNN, LSTM and GRU with ``layers`` and ``bidirectional`` (and the
GRU's ``reset="before"`` / ``"after"``): forward and back-propagation through time by hand in
numpy, batched, with right padding.  It imports nothing from tinygraph or rnn.

Parameter names follow the models: the layer's number when there are several, "_r" for the
chain backward in time (``W``, ``W_r``, ``Wf2``, ``Uu1_r``, ...).  Layer l > 1 reads the two
directions of layer l - 1 side by side (forward first); o(t) = c + [top states] V.T; the loss is
sum over t of (1/B) sum_b mask CE(o_b(t), y_b(t)).  A masked step keeps its chain's state.
"""

import numpy as np

from bptt_reference import as_batched_targets, as_step_inputs, cross_entropy_rows, one_hot, softmax


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


GATES = {"elman": ("",), "lstm": ("f", "g", "o", ""), "gru": ("u", "r", "")}


def _pre(P, gate, k, x, h):
    return x @ P[f"U{gate}{k}"].T + P[f"b{gate}{k}"] + h @ P[f"W{gate}{k}"].T


def _forward(kind, P, k, x, state, reset):
    """One step: (new state dict, cache)."""
    h = state["h"]
    if kind == "elman":
        new = np.tanh(_pre(P, "", k, x, h))
        return {"h": new}, (x, h, new)
    if kind == "lstm":
        f, g, q = (sigmoid(_pre(P, gate, k, x, h)) for gate in ("f", "g", "o"))
        cand = np.tanh(_pre(P, "", k, x, h))
        s = f * state["s"] + g * cand
        return {"s": s, "h": np.tanh(s) * q}, (x, h, state["s"], f, g, q, cand, s)
    u, r = (sigmoid(_pre(P, gate, k, x, h)) for gate in ("u", "r"))
    if reset == "after":
        hidden = h @ P[f"W{k}"].T + P[f"bh{k}"]
        n = np.tanh(x @ P[f"U{k}"].T + P[f"b{k}"] + r * hidden)
    else:
        hidden = None
        n = np.tanh(x @ P[f"U{k}"].T + P[f"b{k}"] + (r * h) @ P[f"W{k}"].T)
    return {"h": u * h + (1 - u) * n}, (x, h, u, r, n, hidden)


def _gate_grads(P, G, gate, k, da, x, h):
    """Accumulate dU, dW, db of one pre-activation; returns its (dx, dh)."""
    G[f"U{gate}{k}"] += da.T @ x
    G[f"W{gate}{k}"] += da.T @ h
    G[f"b{gate}{k}"] += da.sum(axis=0)
    return da @ P[f"U{gate}{k}"], da @ P[f"W{gate}{k}"]


def _backward(kind, P, G, k, cache, d_new, reset):
    """One step back: gradients of the new state -> (dx, d previous state)."""
    if kind == "elman":
        x, h, new = cache
        return _as(_gate_grads(P, G, "", k, d_new["h"] * (1 - new ** 2), x, h), {})
    if kind == "lstm":
        x, h, s_prev, f, g, q, cand, s = cache
        tanh_s = np.tanh(s)
        ds = d_new["s"] + d_new["h"] * q * (1 - tanh_s ** 2)
        das = {"f": ds * s_prev * f * (1 - f), "g": ds * cand * g * (1 - g),
               "o": d_new["h"] * tanh_s * q * (1 - q), "": ds * g * (1 - cand ** 2)}
        dx, dh = 0.0, 0.0
        for gate, da in das.items():
            gx, gh = _gate_grads(P, G, gate, k, da, x, h)
            dx, dh = dx + gx, dh + gh
        return dx, {"h": dh, "s": ds * f}
    x, h, u, r, n, hidden = cache
    dh_new = d_new["h"]
    dn = dh_new * (1 - u)
    du = dh_new * (h - n)
    dh = dh_new * u
    dan = dn * (1 - n ** 2)
    G[f"U{k}"] += dan.T @ x
    G[f"b{k}"] += dan.sum(axis=0)
    dx = dan @ P[f"U{k}"]
    if reset == "after":
        dhidden = dan * r
        dr = dan * hidden
        G[f"W{k}"] += dhidden.T @ h
        G[f"bh{k}"] += dhidden.sum(axis=0)
        dh = dh + dhidden @ P[f"W{k}"]
    else:
        G[f"W{k}"] += dan.T @ (r * h)
        drh = dan @ P[f"W{k}"]
        dr = drh * h
        dh = dh + drh * r
    for gate, da in (("u", du * u * (1 - u)), ("r", dr * r * (1 - r))):
        gx, gh = _gate_grads(P, G, gate, k, da, x, h)
        dx, dh = dx + gx, dh + gh
    return dx, {"h": dh}


def _as(pair, rest):
    dx, dh = pair
    return dx, {"h": dh, **rest}


def _chain(kind, P, k, x, mask, H, reverse, reset):
    """Forward one chain over (T, B, n) inputs: (states per step (T list of dicts), caches)."""
    T, B = mask.shape
    parts = ("s", "h") if kind == "lstm" else ("h",)
    state = {p: np.zeros((B, H)) for p in parts}
    states, caches = [None] * T, [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        new, cache = _forward(kind, P, k, x[t], state, reset)
        m = mask[t][:, None]
        state = {p: m * new[p] + (1 - m) * state[p] for p in parts}
        states[t], caches[t] = state, cache
    return states, caches


def _chain_back(kind, P, G, k, caches, mask, d_out, reverse, reset):
    """BPTT through one chain: d_out (T, B, H) reaches each h(t) from above; returns dx (T, B, n)."""
    T = len(caches)
    parts = ("s", "h") if kind == "lstm" else ("h",)
    future = {p: np.zeros_like(d_out[0]) for p in parts}
    dx = [None] * T
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        m = mask[t][:, None]
        d_state = {p: future[p] + (d_out[t] if p == "h" else 0.0) for p in parts}
        d_new = {p: m * d_state[p] for p in parts}
        dx[t], d_prev = _backward(kind, P, G, k, caches[t], d_new, reset)
        future = {p: d_prev[p] + (1 - m) * d_state[p] for p in parts}
    return np.stack(dx)


def layered(kind, params, xs, ys, layers, bidirectional, mask=None, reset="before"):
    """Loss and gradients of every parameter.  kind: "elman", "lstm" or "gru"."""
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = as_step_inputs(xs, _first_input_width(P, kind, layers))
    ys = as_batched_targets(ys)
    T, B = ys.shape
    m = np.ones((T, B)) if mask is None else np.asarray(mask, dtype=np.float64)
    H = P["V"].shape[1] // (2 if bidirectional else 1)
    dirs = (False, True) if bidirectional else (False,)

    def sfx(layer, reverse):
        return ("" if layers == 1 else str(layer)) + ("_r" if reverse else "")

    inputs, runs = [x], []
    for layer in range(1, layers + 1):
        outs = []
        for reverse in dirs:
            states, caches = _chain(kind, P, sfx(layer, reverse), inputs[-1], m, H, reverse, reset)
            runs.append((layer, reverse, caches))
            outs.append(np.stack([s["h"] for s in states]))
        inputs.append(np.concatenate(outs, axis=-1))
    top = inputs[-1]
    G = {k: np.zeros_like(v) for k, v in P.items()}
    loss = 0.0
    d_top = np.zeros_like(top)
    for t in range(T):
        o = P["c"] + top[t] @ P["V"].T
        weights = m[t] / B
        loss += float(weights @ cross_entropy_rows(o, ys[t]))
        go = weights[:, None] * (softmax(o) - one_hot(ys[t], P["V"].shape[0]))
        G["V"] += go.T @ top[t]
        G["c"] += go.sum(axis=0)
        d_top[t] = go @ P["V"]
    d_above = d_top
    for layer in range(layers, 0, -1):
        d_below = 0.0
        for i, reverse in enumerate(dirs):
            caches = next(c for l_, r_, c in runs if l_ == layer and r_ == reverse)
            d_out = d_above[..., i * H:(i + 1) * H]
            d_below = d_below + _chain_back(kind, P, G, sfx(layer, reverse), caches, m, d_out,
                                            reverse, reset)
        d_above = d_below
    return loss, G


def _first_input_width(P, kind, layers):
    gate = GATES[kind][0]
    return P[f"U{gate}{'' if layers == 1 else '1'}"].shape[1]
