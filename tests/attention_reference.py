"""Independent oracle for the encoder-decoder with attention (Bahdanau et al. 2015): forward and
back-propagation through time written out by hand in numpy, batched, with padded sources.

It imports nothing from tinygraph or rnn.  Equations (rows are examples, so ``W s`` reads
``s @ W.T``):

    encoder  h(k) = m(k) tanh(b + h(k-1) W.T + x(k) U.T) + (1 - m(k)) h(k-1),  h(0) = 0
    additive e(t, k) = va . tanh(s(t-1) Wa.T + h(k) Ua.T);   dot  e(t, k) = s(t-1) . h(k)
    α(t) = softmax over the unpadded k of e(t, .),  ctx(t) = sum_k α(t, k) h(k)
    decoder  s(t) = tanh(bd + s(t-1) Wd.T + onehot(y(t-1)) Ud.T + ctx(t) R.T),  s(0) = h(n_x)
    o(t) = c + s(t) V.T,  loss = sum_t mean_b CE(o(t), y(t))
"""

import numpy as np

from bptt_reference import (_tanh_chain, _tanh_chain_bptt, as_batched_targets, as_step_inputs,
                            cross_entropy_rows, one_hot, softmax)


def encoder_decoder_attention(params, xs, ys, start, attention, mask=None):
    """Loss, gradients of every parameter and the weights α (n_y, B, n_x).

    params : U (H, n_in), W, b, Ud (H, n_out + 1), Wd, R, bd, V (C, H), c, and for "additive"
    Wa, Ua (H, H), va (H,).  xs ids (n_x,) / (n_x, B) or floats; ys ids (n_y,) / (n_y, B);
    mask (n_x, B) of 0/1 or None.
    """
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = as_step_inputs(xs, P["U"].shape[1])
    ys = as_batched_targets(ys)
    n_x, B = x.shape[:2]
    n_y = ys.shape[0]
    H = P["W"].shape[0]
    m = np.ones((n_x, B)) if mask is None else np.asarray(mask, dtype=np.float64)
    valid = m.T > 0                                                 # (B, n_x)

    h, h_cand = _tanh_chain(x, P["U"], P["W"], P["b"], np.zeros((B, H)), m)
    memory = np.transpose(h[1:], (1, 0, 2))                          # (B, n_x, H)
    keys = memory @ P["Ua"].T if attention == "additive" else None
    prev = np.concatenate([np.full((1, B), start), ys[:-1]]).astype(np.int64)
    y_in = one_hot(prev, P["Ud"].shape[1])

    s = [h[-1]]
    saved = []
    loss = 0.0
    for t in range(n_y):
        sp = s[-1]
        if attention == "additive":
            z = np.tanh(keys + (sp @ P["Wa"].T)[:, None, :])
            e = z @ P["va"]
        else:
            z = None
            e = np.einsum("bkh,bh->bk", memory, sp)
        e = np.where(valid, e, -np.inf)
        alpha = np.exp(e - e.max(axis=1, keepdims=True))
        alpha /= alpha.sum(axis=1, keepdims=True)
        ctx = np.einsum("bk,bkh->bh", alpha, memory)
        st = np.tanh(P["bd"] + sp @ P["Wd"].T + y_in[t] @ P["Ud"].T + ctx @ P["R"].T)
        o = P["c"] + st @ P["V"].T
        loss += cross_entropy_rows(o, ys[t]).sum() / B
        s.append(st)
        saved.append((z, alpha, ctx, o))

    grads = {k: np.zeros_like(v) for k, v in P.items()}
    d_memory = np.zeros_like(memory)
    d_keys = np.zeros_like(memory)
    ds_next = np.zeros((B, H))
    for t in range(n_y - 1, -1, -1):
        z, alpha, ctx, o = saved[t]
        sp, st = s[t], s[t + 1]
        go = (softmax(o) - one_hot(ys[t], P["V"].shape[0])) / B
        grads["V"] += go.T @ st
        grads["c"] += go.sum(axis=0)
        da = (go @ P["V"] + ds_next) * (1 - st ** 2)
        grads["bd"] += da.sum(axis=0)
        grads["Wd"] += da.T @ sp
        grads["Ud"] += da.T @ y_in[t]
        grads["R"] += da.T @ ctx
        ds_prev = da @ P["Wd"]
        d_ctx = da @ P["R"]
        d_alpha = np.einsum("bh,bkh->bk", d_ctx, memory)
        d_memory += alpha[:, :, None] * d_ctx[:, None, :]
        de = alpha * (d_alpha - (alpha * d_alpha).sum(axis=1, keepdims=True))
        if attention == "additive":
            grads["va"] += np.einsum("bk,bkh->h", de, z)
            d_pre = de[:, :, None] * P["va"] * (1 - z ** 2)
            d_keys += d_pre
            dq = d_pre.sum(axis=1)
            grads["Wa"] += dq.T @ sp
            ds_prev += dq @ P["Wa"]
        else:
            d_memory += de[:, :, None] * sp[:, None, :]
            ds_prev += np.einsum("bk,bkh->bh", de, memory)
        ds_next = ds_prev
    if attention == "additive":
        grads["Ua"] += np.einsum("bkh,bkj->hj", d_keys, memory)
        d_memory += d_keys @ P["Ua"]
    grad_h_out = np.transpose(d_memory, (1, 0, 2)).copy()
    grad_h_out[-1] += ds_next                                        # s(0) = h(n_x)
    grads["U"], grads["W"], grads["b"], _, _ = _tanh_chain_bptt(
        grad_h_out, x, P["U"], P["W"], h, h_cand, m)
    alphas = np.stack([a for _, a, _, _ in saved])
    return loss, grads, alphas
