"""Independent oracle for the designs of sections 10.5-10.12: forward and BPTT by hand in numpy.

The same rules as ``bptt_reference.py`` (whose helpers this reuses): nothing from tinygraph
or rnn is imported, every design is written out step by step with its own backward
recursion, everything is batched internally (an unbatched input is a batch of one), the
loss is the sum over time of the batch mean, and where a mask is 0 the state is carried
unchanged and the step adds no loss.  Rows are examples: the book's ``W h`` is ``h @ W.T``.
"""

import numpy as np

from bptt_reference import (_gated_loss_grads, _initial_state, as_batched_targets,
                            as_step_inputs, cross_entropy_rows, one_hot, sigmoid, softmax)


def _floats(params):
    return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


def _mask(mask, T, B):
    return np.ones((T, B)) if mask is None else np.asarray(mask, dtype=np.float64)


def _state_grad(grad, given):
    """The gradient of an initial state shaped like the state given ((H,) sums the batch)."""
    return grad if given is None or np.ndim(given) == 2 else grad.sum(axis=0)


# ---------------------------------------------------------------- section 10.9: leaky units
def leaky(params, xs, ys, alpha, skip=None, h0=None, mask=None):
    """v(t) = tanh(b + h(t-1) W.T + x U.T [+ h(t-d) Wd.T]), h(t) = alpha h(t-1) + (1-alpha) v(t).

    alpha : a float, or None to read it as sigmoid(params["alpha_logit"]) (one per unit).
    h(t-d) is h(0) while t - d < 1.  Returns (loss, grads) keyed like params, plus "h0".
    """
    P = _floats(params)
    x = as_step_inputs(xs, P["U"].shape[1])
    ys = as_batched_targets(ys)
    T, B = ys.shape
    H = P["W"].shape[0]
    mask = _mask(mask, T, B)
    a_ = sigmoid(P["alpha_logit"]) if alpha is None else alpha
    h = [_initial_state(h0, B, H)]
    vs = [None]
    for t in range(1, T + 1):
        a = P["b"] + h[t - 1] @ P["W"].T + x[t - 1] @ P["U"].T
        if skip is not None:
            a = a + h[max(t - skip, 0)] @ P["Wd"].T
        vs.append(np.tanh(a))
        new = a_ * h[t - 1] + (1 - a_) * vs[t]
        m = mask[t - 1][:, None]
        h.append(m * new + (1 - m) * h[t - 1])
    loss, grad_o = _gated_loss_grads(ys, mask, P["V"], P["c"], h[1:])
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    dh = np.zeros((T + 1, B, H))             # dh[t]: what reaches h(t) from later steps
    d_alpha = np.zeros(H)
    for t in range(T, 0, -1):
        grads["c"] += grad_o[t - 1].sum(axis=0)
        grads["V"] += grad_o[t - 1].T @ h[t]
        g = dh[t] + grad_o[t - 1] @ P["V"]
        m = mask[t - 1][:, None]
        g_new = m * g
        dh[t - 1] += (1 - m) * g + a_ * g_new
        d_alpha += np.sum(g_new * (h[t - 1] - vs[t]), axis=0)
        g_a = (1 - a_) * g_new * (1 - vs[t] ** 2)
        grads["b"] += g_a.sum(axis=0)
        grads["W"] += g_a.T @ h[t - 1]
        grads["U"] += g_a.T @ x[t - 1]
        dh[t - 1] += g_a @ P["W"]
        if skip is not None:
            lag = max(t - skip, 0)
            grads["Wd"] += g_a.T @ h[lag]
            dh[lag] += g_a @ P["Wd"]
    if alpha is None:
        grads["alpha_logit"] = d_alpha * a_ * (1 - a_)
    grads["h0"] = _state_grad(dh[0], h0)
    return loss, grads


# ---------------------------------------------------------------- section 10.8: echo state network
def echo_state(params, xs, ys, h0=None, mask=None):
    """h(t) = tanh(b + h(t-1) W.T + x U.T) (U, W, b fixed), o = c + h V.T,
    L = sum_t (1/B) sum_b mask ||o - y||^2; ys floats (T, K) or (T, B, K).

    Returns (loss, grads) with "V", "c" and "h0" (BPTT through the fixed reservoir).
    """
    P = _floats(params)
    x = as_step_inputs(xs, P["U"].shape[1])
    ys = np.asarray(ys, dtype=np.float64)
    ys = ys if ys.ndim == 3 else ys[:, None, :]
    T, B, _ = ys.shape
    H = P["W"].shape[0]
    mask = _mask(mask, T, B)
    h = [_initial_state(h0, B, H)]
    cand = [None]
    for t in range(1, T + 1):
        cand.append(np.tanh(P["b"] + h[t - 1] @ P["W"].T + x[t - 1] @ P["U"].T))
        m = mask[t - 1][:, None]
        h.append(m * cand[t] + (1 - m) * h[t - 1])
    loss = 0.0
    grads = {"V": np.zeros_like(P["V"]), "c": np.zeros_like(P["c"])}
    future = np.zeros((B, H))
    for t in range(T, 0, -1):
        diff = P["c"] + h[t] @ P["V"].T - ys[t - 1]
        w = mask[t - 1][:, None] / B
        loss += float(np.sum(w * diff ** 2))
        grad_o = 2 * w * diff
        grads["c"] += grad_o.sum(axis=0)
        grads["V"] += grad_o.T @ h[t]
        g = future + grad_o @ P["V"]
        m = mask[t - 1][:, None]
        future = (1 - m) * g + (m * g * (1 - cand[t] ** 2)) @ P["W"]
    grads["h0"] = _state_grad(future, h0)
    return loss, grads


# ---------------------------------------------------------------- section 10.5: deep RNNs
def _mlp_forward(v, layers):
    """tanh layers: layers is a list of (weight, bias); returns every activation, v first."""
    acts = [v]
    for weight, bias in layers:
        acts.append(np.tanh(bias + acts[-1] @ weight.T))
    return acts


def _mlp_backward(acts, layers, g, grads, names):
    """Back through ``_mlp_forward``: accumulates into grads[names[i]] = (weight, bias) names;
    returns the gradient reaching the MLP's input."""
    for i in range(len(layers) - 1, -1, -1):
        g_pre = g * (1 - acts[i + 1] ** 2)
        wname, bname = names[i]
        grads[wname] += g_pre.T @ acts[i]
        grads[bname] += g_pre.sum(axis=0)
        g = g_pre @ layers[i][0]
    return g


def deep_stacked(params, xs, ys, layers, h0=None, mask=None):
    """Figure 10.13 a: h1(t) = tanh(b1 + h1(t-1) W1.T + x U1.T),
    hl(t) = tanh(bl + hl(t-1) Wl.T + h(l-1)(t) Ul.T), o = c + hL V.T.

    h0 : None or a dict {"h1": ..., ...}.  Returns (loss, grads) with "h0" a dict of layers.
    """
    P = _floats(params)
    x = as_step_inputs(xs, P["U1"].shape[1])
    ys = as_batched_targets(ys)
    T, B = ys.shape
    H = P["W1"].shape[0]
    mask = _mask(mask, T, B)
    given = h0 or {}
    levels = range(1, layers + 1)
    h = {l: [_initial_state(given.get(f"h{l}"), B, H)] for l in levels}
    new = {l: [None] for l in levels}
    for t in range(1, T + 1):
        m = mask[t - 1][:, None]
        below = x[t - 1]
        for l in levels:
            cand = np.tanh(P[f"b{l}"] + h[l][t - 1] @ P[f"W{l}"].T + below @ P[f"U{l}"].T)
            new[l].append(cand)
            h[l].append(m * cand + (1 - m) * h[l][t - 1])
            below = h[l][t]
    loss, grad_o = _gated_loss_grads(ys, mask, P["V"], P["c"], h[layers][1:])
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    future = {l: np.zeros((B, H)) for l in levels}
    for t in range(T, 0, -1):
        m = mask[t - 1][:, None]
        grads["c"] += grad_o[t - 1].sum(axis=0)
        grads["V"] += grad_o[t - 1].T @ h[layers][t]
        from_above = grad_o[t - 1] @ P["V"]
        for l in reversed(levels):
            g = future[l] + from_above
            g_a = m * g * (1 - new[l][t] ** 2)
            grads[f"b{l}"] += g_a.sum(axis=0)
            grads[f"W{l}"] += g_a.T @ h[l][t - 1]
            below = x[t - 1] if l == 1 else h[l - 1][t]
            grads[f"U{l}"] += g_a.T @ below
            future[l] = (1 - m) * g + g_a @ P[f"W{l}"]
            from_above = g_a @ P[f"U{l}"]
    grads["h0"] = {f"h{l}": _state_grad(future[l], given.get(f"h{l}")) for l in levels}
    return loss, grads


def deep_mlp(params, xs, ys, hidden, skip=False, h0=None, mask=None):
    """Figure 10.13 b (and c with ``skip``): e = MLP_e(x), z = MLP_z(h(t-1)),
    h(t) = tanh(b + e U.T + z W.T [+ h(t-1) Ws.T]), g = MLP_g(h(t)), o = c + g V.T.

    Each MLP has ``hidden`` tanh layers; their parameters are (Ue, be), (Wz, bz), (Vg, bg),
    numbered 1.. when hidden > 1.  Returns (loss, grads) with "h0".
    """
    P = _floats(params)
    suffixes = [""] if hidden == 1 else [str(i) for i in range(1, hidden + 1)]
    block = {k: [(P[w + s], P[b + s]) for s in suffixes]
             for k, w, b in (("e", "Ue", "be"), ("z", "Wz", "bz"), ("g", "Vg", "bg"))}
    names = {k: [(w + s, b + s) for s in suffixes]
             for k, w, b in (("e", "Ue", "be"), ("z", "Wz", "bz"), ("g", "Vg", "bg"))}
    x = as_step_inputs(xs, P["Ue" + suffixes[0]].shape[1])
    ys = as_batched_targets(ys)
    T, B = ys.shape
    H = P["W"].shape[0]
    C = P["V"].shape[0]
    mask = _mask(mask, T, B)
    h = [_initial_state(h0, B, H)]
    saved = [None]
    loss = 0.0
    for t in range(1, T + 1):
        e = _mlp_forward(x[t - 1], block["e"])
        z = _mlp_forward(h[t - 1], block["z"])
        a = P["b"] + e[-1] @ P["U"].T + z[-1] @ P["W"].T
        if skip:
            a = a + h[t - 1] @ P["Ws"].T
        cand = np.tanh(a)
        m = mask[t - 1][:, None]
        h.append(m * cand + (1 - m) * h[t - 1])
        g = _mlp_forward(h[t], block["g"])
        o = P["c"] + g[-1] @ P["V"].T
        w = mask[t - 1] / B
        loss += float(w @ cross_entropy_rows(o, ys[t - 1]))
        grad_o = w[:, None] * (softmax(o) - one_hot(ys[t - 1], C))
        saved.append((e, z, cand, g, grad_o))
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    future = np.zeros((B, H))
    for t in range(T, 0, -1):
        e, z, cand, g, grad_o = saved[t]
        m = mask[t - 1][:, None]
        grads["c"] += grad_o.sum(axis=0)
        grads["V"] += grad_o.T @ g[-1]
        dh = future + _mlp_backward(g, block["g"], grad_o @ P["V"], grads, names["g"])
        g_a = m * dh * (1 - cand ** 2)
        grads["b"] += g_a.sum(axis=0)
        grads["U"] += g_a.T @ e[-1]
        grads["W"] += g_a.T @ z[-1]
        _mlp_backward(e, block["e"], g_a @ P["U"], grads, names["e"])
        future = (1 - m) * dh + _mlp_backward(z, block["z"], g_a @ P["W"], grads, names["z"])
        if skip:
            grads["Ws"] += g_a.T @ h[t - 1]
            future = future + g_a @ P["Ws"]
    grads["h0"] = _state_grad(future, h0)
    return loss, grads


# ---------------------------------------------------------------- section 10.12: explicit memory
EPS = 1e-6


def _address(cells, key):
    """softmax_i(key . M_i / sqrt(||M_i||^2 + EPS)): cells (B, S, D), key (B, D)."""
    match = np.einsum("bsd,bd->bs", cells, key)
    norm = np.sqrt(np.sum(cells ** 2, axis=-1) + EPS)
    return softmax(match / norm), match, norm


def _address_backward(cells, key, w, match, norm, g_w):
    """Gradients of the cells and the key from the gradient of the weights w."""
    g_s = w * (g_w - np.sum(w * g_w, axis=-1, keepdims=True))
    g_match = g_s / norm
    g_norm = -g_s * match / norm ** 2
    g_cells = g_match[:, :, None] * key[:, None, :] + (g_norm / norm)[:, :, None] * cells
    g_key = np.einsum("bs,bsd->bd", g_match, cells)
    return g_cells, g_key


def memory(params, xs, ys, slots, width, h0=None, mask=None):
    """A recurrent controller with a slots x width memory, content-addressed soft read/write:

    h = tanh(b + h(t-1) W.T + x U.T + r(t-1) R.T); ww = address(M(t-1), h Kw.T);
    e = sig(h E.T), a = tanh(h A.T); M = M(t-1) (1 - ww e) + ww a; wr = address(M, h Kr.T);
    r = sum_i wr_i M_i; o = c + [h; r] V.T.  M(0) = M0 (one for the batch) unless h0 gives M.
    h0 : None or a dict of "h", "M" (flattened), "r".  Returns (loss, grads) with "h0" a dict.
    """
    P = _floats(params)
    x = as_step_inputs(xs, P["U"].shape[1])
    ys = as_batched_targets(ys)
    T, B = ys.shape
    H = P["W"].shape[0]
    mask = _mask(mask, T, B)
    given = h0 or {}
    h = [_initial_state(given.get("h"), B, H)]
    r = [_initial_state(given.get("r"), B, width)]
    M0 = given.get("M", P["M0"].reshape(-1))
    M = [_initial_state(M0, B, slots * width).reshape(B, slots, width)]
    saved = [None]
    for t in range(1, T + 1):
        hn = np.tanh(P["b"] + h[t - 1] @ P["W"].T + x[t - 1] @ P["U"].T + r[t - 1] @ P["R"].T)
        cells = M[t - 1]
        kw = hn @ P["Kw"].T
        ww, match_w, norm_w = _address(cells, kw)
        e = sigmoid(hn @ P["E"].T)
        add = np.tanh(hn @ P["A"].T)
        written = cells * (1 - ww[:, :, None] * e[:, None, :]) + ww[:, :, None] * add[:, None, :]
        kr = hn @ P["Kr"].T
        wr, match_r, norm_r = _address(written, kr)
        rn = np.einsum("bs,bsd->bd", wr, written)
        saved.append((hn, kw, ww, match_w, norm_w, e, add, written, kr, wr, match_r, norm_r, rn))
        m = mask[t - 1][:, None]
        h.append(m * hn + (1 - m) * h[t - 1])
        r.append(m * rn + (1 - m) * r[t - 1])
        M.append(m[:, :, None] * written + (1 - m[:, :, None]) * cells)
    read_outs = [np.hstack([h[t], r[t]]) for t in range(1, T + 1)]
    loss, grad_o = _gated_loss_grads(ys, mask, P["V"], P["c"], read_outs)
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    gh, gr, gM = np.zeros((B, H)), np.zeros((B, width)), np.zeros((B, slots, width))
    for t in range(T, 0, -1):
        hn, kw, ww, match_w, norm_w, e, add, written, kr, wr, match_r, norm_r, rn = saved[t]
        cells = M[t - 1]
        m = mask[t - 1][:, None]
        grads["c"] += grad_o[t - 1].sum(axis=0)
        grads["V"] += grad_o[t - 1].T @ read_outs[t - 1]
        back = grad_o[t - 1] @ P["V"]
        gh, gr = gh + back[:, :H], gr + back[:, H:]
        g_h, g_r, g_w = m * gh, m * gr, m[:, :, None] * gM
        prev_h, prev_r, prev_M = (1 - m) * gh, (1 - m) * gr, (1 - m[:, :, None]) * gM
        g_wr = np.einsum("bd,bsd->bs", g_r, written)
        g_w = g_w + wr[:, :, None] * g_r[:, None, :]
        g_written, g_kr = _address_backward(written, kr, wr, match_r, norm_r, g_wr)
        g_w = g_w + g_written
        grads["Kr"] += g_kr.T @ hn
        g_h = g_h + g_kr @ P["Kr"]
        g_cells = g_w * (1 - ww[:, :, None] * e[:, None, :])
        g_ww = np.sum(g_w * (add[:, None, :] - cells * e[:, None, :]), axis=-1)
        g_e = -np.sum(g_w * cells * ww[:, :, None], axis=1)
        g_add = np.sum(g_w * ww[:, :, None], axis=1)
        g_pa = g_add * (1 - add ** 2)
        g_pe = g_e * e * (1 - e)
        grads["A"] += g_pa.T @ hn
        grads["E"] += g_pe.T @ hn
        g_h = g_h + g_pa @ P["A"] + g_pe @ P["E"]
        g_c2, g_kw = _address_backward(cells, kw, ww, match_w, norm_w, g_ww)
        g_cells = g_cells + g_c2
        grads["Kw"] += g_kw.T @ hn
        g_h = g_h + g_kw @ P["Kw"]
        g_a = g_h * (1 - hn ** 2)
        grads["b"] += g_a.sum(axis=0)
        grads["W"] += g_a.T @ h[t - 1]
        grads["U"] += g_a.T @ x[t - 1]
        grads["R"] += g_a.T @ r[t - 1]
        gh = prev_h + g_a @ P["W"]
        gr = prev_r + g_a @ P["R"]
        gM = prev_M + g_cells
    flat = gM.reshape(B, slots * width)
    if "M" in given:
        grads["h0"] = {"M": _state_grad(flat, given["M"])}
    else:
        grads["M0"] = flat.sum(axis=0).reshape(slots, width)
        grads["h0"] = {}
    grads["h0"].update(h=_state_grad(gh, given.get("h")), r=_state_grad(gr, given.get("r")))
    return loss, grads


# ---------------------------------------------------------------- section 10.6: recursive nets
def recursive(params, tree, y):
    """Leaves h = x V.T, merges h = tanh(b + left U.T + right W.T), o = c + root Vo.T,
    L = batch mean of CE(o, y).  Leaves: ids () / (B,) or vectors (n_in,) / (B, n_in).
    Returns (loss, grads)."""
    P = _floats(params)
    n_in = P["V"].shape[1]

    def dense(leaf):
        leaf = np.asarray(leaf)
        if leaf.dtype.kind in "iu":
            return one_hot(np.atleast_1d(leaf), n_in)
        return np.atleast_2d(leaf).astype(np.float64)

    def forward(node):
        if isinstance(node, tuple):
            left, right = forward(node[0]), forward(node[1])
            h = np.tanh(P["b"] + left[0] @ P["U"].T + right[0] @ P["W"].T)
            return (h, "pair", left, right)
        x = dense(node)
        return (x @ P["V"].T, "leaf", x)

    def backward(done, g):
        if done[1] == "leaf":
            grads["V"] += g.T @ done[2]
            return
        h, _, left, right = done
        g_a = g * (1 - h ** 2)
        grads["b"] += g_a.sum(axis=0)
        grads["U"] += g_a.T @ left[0]
        grads["W"] += g_a.T @ right[0]
        backward(left, g_a @ P["U"])
        backward(right, g_a @ P["W"])

    root = forward(tree)
    y = np.atleast_1d(np.asarray(y))
    B = len(y)
    o = P["c"] + root[0] @ P["Vo"].T
    loss = float(np.mean(cross_entropy_rows(o, y)))
    grad_o = (softmax(o) - one_hot(y, o.shape[1])) / B
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    grads["c"] += grad_o.sum(axis=0)
    grads["Vo"] += grad_o.T @ root[0]
    backward(root, grad_o @ P["Vo"])
    return loss, grads
