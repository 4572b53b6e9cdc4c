"""Every number viz.explore shows, for the explorer's designs whose numbers were once wrong (the
two-chain bidirectional net and encoder-decoder, a state carried in from an earlier run), checked
against a numpy computation written here: the forward pass, BPTT by eqs. 10.18-10.21 per loss
term, the Jacobians diag(1 - v(t)²) W, their spectra, the lag decay and the eq. 10.52 ratio,
and the saturated units; over runs long enough to be shown in windows, and chains of unequal
lengths."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from explorer_numpy_oracle import lag_decay     # rnn.lag_decay's definition, in numpy
from viz.cli import EXPLORABLE, MODELS, model_inputs

RTOL, ATOL = 2e-5, 1e-9          # the page rounds to six significant digits


def _close(got, want, what):
    got = np.array([np.nan if v is None else v for v in got], dtype=float)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def _softmax(o):
    e = np.exp(o - o.max())
    return e / e.sum()


def _chain(drives, W, b, v0):
    """v(t) = tanh(b + W v(t-1) + drives[t-1]), t = 1..T; returns (T+1, H) with v(0) = v0."""
    v = [np.asarray(v0, dtype=float)]
    for d in drives:
        v.append(np.tanh(b + W @ v[-1] + d))
    return np.array(v)


def _back(direct, v, W):
    """What reaches v(1..T) of a tanh chain from ``direct`` (T, H), the gradients that reach each
    v(t) from outside the chain: g(t) = direct(t) + W.T diag(1 - v(t+1)²) g(t+1)."""
    g = np.zeros_like(direct)
    future = np.zeros(direct.shape[1])
    for t in range(len(direct), 0, -1):
        g[t - 1] = direct[t - 1] + future
        future = W.T @ ((1 - v[t] ** 2) * g[t - 1])
    return g


def _jacobians(v, W):
    """J(t) = ∂v(t)/∂v(t-1) = diag(1 - v(t)²) W, t = 1..T."""
    return np.array([(1 - s ** 2)[:, None] * W for s in v[1:]])


def _check_chain(diag, v, W, grads, what, backward=False):
    """The spectra, lag decay and eq. 10.52 ratio the page shows for one chain."""
    jacs = _jacobians(v, W)
    _close(diag["spectra"]["norm"], [np.linalg.norm(J, 2) for J in jacs], f"{what}: ‖J(t)‖₂")
    _close(diag["spectra"]["radius"], [np.abs(np.linalg.eigvals(J)).max() for J in jacs],
           f"{what}: spectral radius")
    norms, rate, scale = lag_decay(jacs[::-1] if backward else jacs, min(len(jacs), 30), 3)
    _close(diag["lag"]["norms"], norms, f"{what}: lag decay")
    _close([diag["lag"]["rate"], diag["lag"]["scale"]], [rate, scale], f"{what}: fitted rate")
    _close(diag["ratio"][:len(jacs)], [np.linalg.norm(g @ J) / np.linalg.norm(g) for g, J in zip(grads, jacs)],
           f"{what}: eq. 10.52 ratio")
    assert all(v is None for v in diag["ratio"][len(jacs):]), "no ratio past the chain's own steps"


def _connectivity(direct_of, v, W, T_loss, width):
    """‖∂L(t)/∂v(k)‖ for loss terms t = 1..T_loss and chain steps k = 1..width; ``direct_of(t)``
    is (k, ∂L(t)/∂v(k) from outside the chain) for the one step k that L(t) reads directly."""
    cells = np.zeros((T_loss, width))
    for t in range(1, T_loss + 1):
        k, g = direct_of(t)
        cells[t - 1, k - 1] = np.linalg.norm(g)
        for j in range(k - 1, 0, -1):            # from v(j + 1) back to v(j)
            g = W.T @ ((1 - v[j + 1] ** 2) * g)
            cells[t - 1, j - 1] = np.linalg.norm(g)
    return cells


def _saturation(*chains):
    """Per step: the fraction of the tanh units with slope 1 - v² below 0.05."""
    return np.mean(np.concatenate([np.abs(1 - c[1:] ** 2) < 0.05 for c in chains], axis=1), axis=1)


def test_elman_over_a_windowed_run_from_a_carried_state_every_number():
    """40 steps (four windows of the page), h(0) the state an earlier run of 7 steps carried in
    undetached: the page's values, norms, ∂L/∂v(t), connectivity, Jacobian spectra, lag decay,
    ratio and saturation are those of numpy's run from that h(0)."""
    model = MODELS["elman"](3)
    rng = np.random.default_rng(5)
    for p in model.parameters():            # larger weights: some units saturate
        p.data *= 2.5
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    h0 = model.run(rng.integers(0, 6, 7), rng.integers(0, 6, 7)).last    # carried undetached
    xs, ys = rng.integers(0, 6, 40), rng.integers(0, 6, 40)
    b = viz.explore(model, xs, ys, h0=h0).data["bundles"][-1]
    assert len(b["windows"]) > 1                # shown in windows of steps

    h = _chain([P["U"][:, x] for x in xs], P["W"], P["b"], np.asarray(h0.data).reshape(-1))
    o = h[1:] @ P["V"].T + P["c"]
    probs = np.array([_softmax(r) for r in o])
    terms = -np.log(probs[np.arange(40), ys])
    grad_o = probs - np.eye(6)[ys]
    direct = grad_o @ P["V"]
    gh = _back(direct, h, P["W"])
    V = b["vars"]
    assert b["loss"] == pytest.approx(terms.sum(), rel=RTOL)
    _close([V["L"]["norm"][str(t)] for t in range(1, 41)], terms, "L(t)")
    for t in (0, 1, 17, 40):
        _close(V["h"]["value"][str(t)], h[t], f"h({t})")
    _close([V["h"]["norm"][str(t)] for t in range(41)], np.linalg.norm(h, axis=1), "‖h(t)‖")
    _close([V["h"]["gnorm"][str(t)] for t in range(1, 41)], np.linalg.norm(gh, axis=1), "‖∂L/∂h(t)‖")
    gh0 = P["W"].T @ ((1 - h[1] ** 2) * gh[0])
    _close([V["h"]["gnorm"]["0"]], [np.linalg.norm(gh0)], "‖∂L/∂h(0)‖ of the carried state")
    _close([V["o"]["gnorm"][str(t)] for t in range(1, 41)], np.linalg.norm(grad_o, axis=1), "‖∂L/∂o(t)‖")
    _close(V["o"]["value"]["23"], o[22], "o(23)")
    diag = b["diag"]
    heat = diag["connectivity"]["h"]
    assert heat["row_edges"] == list(range(41)) and heat["col_edges"] == list(range(41))
    _close(np.ravel(heat["cells"]), np.ravel(_connectivity(lambda t: (t, direct[t - 1]), h, P["W"], 40, 40)),
           "connectivity ‖∂L(t)/∂h(k)‖")
    _check_chain(diag, h, P["W"], gh, "h")
    sat = _saturation(h)
    assert sat.max() > 0, "the check needs some saturated units"
    _close(diag["saturation"], sat, "saturation")


@pytest.mark.parametrize("part", ["h", "g"])
def test_the_bidirectional_nets_every_number_for_either_chain(part):
    """Figure 10.11 over 40 steps: h(t) forward from h(0) = 0, g(t) backward from g(41) = 0,
    o(t) = c + V [h(t); g(t)].  Both chains' values and gradients, both heatmaps (g's reaches
    k > t), and the chain ``part``'s Jacobians in its own direction."""
    model = MODELS["bidirectional"](2)
    for p in model.parameters():
        p.data *= 2.0
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    rng = np.random.default_rng(8)
    xs, ys = rng.integers(0, 6, 40), rng.integers(0, 6, 40)
    b = viz.explore(model, xs, ys, part=part).data["bundles"][-1]

    H = P["W"].shape[0]
    h = _chain([P["U"][:, x] for x in xs], P["W"], P["b"], np.zeros(H))
    g_rev = _chain([P["Ug"][:, x] for x in xs[::-1]], P["Wg"], P["bg"], np.zeros(H))
    g = np.concatenate([[np.zeros(H)], g_rev[1:][::-1]])     # g[t] = g(t), t = 1..40
    o = np.concatenate([h[1:], g[1:]], axis=1) @ P["V"].T + P["c"]
    probs = np.array([_softmax(r) for r in o])
    terms = -np.log(probs[np.arange(40), ys])
    grad_o = probs - np.eye(6)[ys]
    direct_h, direct_g = grad_o @ P["V"][:, :H], grad_o @ P["V"][:, H:]
    gh = _back(direct_h, h, P["W"])
    gg = _back(direct_g[::-1], g_rev, P["Wg"])[::-1]
    assert b["loss"] == pytest.approx(terms.sum(), rel=RTOL)
    V = b["vars"]
    _close([V["h"]["gnorm"][str(t)] for t in range(1, 41)], np.linalg.norm(gh, axis=1), "‖∂L/∂h(t)‖")
    _close([V["g"]["gnorm"][str(t)] for t in range(1, 41)], np.linalg.norm(gg, axis=1), "‖∂L/∂g(t)‖")
    _close([V["g"]["norm"][str(t)] for t in range(1, 41)], np.linalg.norm(g[1:], axis=1), "‖g(t)‖")
    _close(V["g"]["value"]["5"], g[5], "g(5)")
    _close(V["h"]["value"]["36"], h[36], "h(36)")
    diag = b["diag"]
    _close(np.ravel(diag["connectivity"]["h"]["cells"]),
           np.ravel(_connectivity(lambda t: (t, direct_h[t - 1]), h, P["W"], 40, 40)),
           "connectivity of h")
    # g run on the reversed sequence is a forward chain: row r is L(41 - r), column j is g(41 - j)
    rev = _connectivity(lambda r: (r, direct_g[40 - r]), g_rev, P["Wg"], 40, 40)
    _close(np.ravel(diag["connectivity"]["g"]["cells"]), np.ravel(rev[::-1, ::-1]),
           "connectivity of g (k > t)")
    if part == "h":
        _check_chain(diag, h, P["W"], gh, "h")
    else:                       # J(t) = ∂g(t)/∂g(t+1) = diag(1 - g(t)²) Wg, t = 1..40
        jac_states = np.concatenate([[np.zeros(H)], g[1:]])
        _check_chain(diag, jac_states, P["Wg"], gg, "g", backward=True)
    _close(diag["saturation"], _saturation(h, g), "saturation of both chains' units")


@pytest.mark.parametrize("n_x, n_y", [(7, 4), (3, 9)])
def test_an_encoder_decoders_every_number_with_chains_of_unequal_length(n_x, n_y):
    """Figure 10.12 with n_x != n_y: the decoder's loss terms, ‖∂L/∂h(t)‖ of the encoder (all of
    it through C = h(n_x)) and ‖∂L/∂s(t)‖ of the decoder, the n_y x n_x and n_y x n_y heatmaps,
    each chain's Jacobians, and each chain's own saturated units."""
    model = MODELS["encdec"](4)
    for p in model.parameters():
        p.data *= 2.0
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    rng = np.random.default_rng(n_x)
    xs, ys = rng.integers(0, 6, n_x), rng.integers(0, 6, n_y)
    H = P["W"].shape[0]
    h = _chain([P["U"][:, x] for x in xs], P["W"], P["b"], np.zeros(H))
    C = h[-1]
    prev = [6] + list(ys[:-1])                    # y(0): the start id n_out
    s = _chain([P["Ud"][:, y] + P["R"] @ C for y in prev], P["Wd"], P["bd"], C)
    o = s[1:] @ P["V"].T + P["c"]
    probs = np.array([_softmax(r) for r in o])
    terms = -np.log(probs[np.arange(n_y), ys])
    grad_o = probs - np.eye(6)[ys]
    direct_s = grad_o @ P["V"]
    gs = _back(direct_s, s, P["Wd"])

    def into_c(gs_rows, s):
        """∂/∂C of what reaches the decoder: through s(0) = C and R C at every step."""
        a = (1 - s[1:] ** 2) * gs_rows                 # ∂/∂a(t) of each decoder step
        return P["Wd"].T @ a[0] + P["R"].T @ a.sum(axis=0)
    direct_h = np.zeros((n_x, H))
    direct_h[-1] = into_c(gs, s)
    gh = _back(direct_h, h, P["W"])

    for part in ("h", "s"):
        b = viz.explore(model, xs, ys, part=part).data["bundles"][-1]
        V = b["vars"]
        assert b["loss"] == pytest.approx(terms.sum(), rel=RTOL)
        _close([V["s"]["gnorm"][str(t)] for t in range(1, n_y + 1)], np.linalg.norm(gs, axis=1),
               "‖∂L/∂s(t)‖")
        _close([V["h"]["gnorm"][str(t)] for t in range(1, n_x + 1)], np.linalg.norm(gh, axis=1),
               "‖∂L/∂h(t)‖")
        _close(V["s"]["value"][str(n_y)], s[n_y], f"s({n_y})")
        _close(V["h"]["value"][str(n_x)], h[n_x], f"h({n_x})")
        diag = b["diag"]
        heat_s = np.zeros((n_y, n_y))
        heat_h = np.zeros((n_y, n_x))
        for t in range(1, n_y + 1):                    # each loss term's own BPTT
            one = np.zeros((n_y, H))
            one[t - 1] = direct_s[t - 1]
            gs_t = _back(one, s, P["Wd"])
            heat_s[t - 1] = np.linalg.norm(gs_t, axis=1)
            d = np.zeros((n_x, H))
            d[-1] = into_c(gs_t, s)
            heat_h[t - 1] = np.linalg.norm(_back(d, h, P["W"]), axis=1)
        _close(np.ravel(diag["connectivity"]["s"]["cells"]), np.ravel(heat_s), "connectivity of s")
        _close(np.ravel(diag["connectivity"]["h"]["cells"]), np.ravel(heat_h), "connectivity of h")
        if part == "s":
            _check_chain(diag, s, P["Wd"], gs, "s")
        else:
            _check_chain(diag, h, P["W"], gh, "h")
        assert set(diag["saturation"]) == {"encoder", "decoder"}
        _close(diag["saturation"]["encoder"][:n_x], _saturation(h), "the encoder's saturation")
        _close(diag["saturation"]["decoder"][:n_y], _saturation(s), "the decoder's saturation")


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _lstm_forward(P, xs, h0, s0):
    """Eqs. 10.40-10.44 (tanh input unit): every step's gates f, g, q, input z, s and h."""
    steps, h, s = [], h0, s0
    for x in xs:
        f = _sigmoid(P["bf"] + P["Uf"][:, x] + P["Wf"] @ h)
        g = _sigmoid(P["bg"] + P["Ug"][:, x] + P["Wg"] @ h)
        q = _sigmoid(P["bo"] + P["Uo"][:, x] + P["Wo"] @ h)
        z = np.tanh(P["b"] + P["U"][:, x] + P["W"] @ h)
        s_prev, s = s, f * s + g * z
        h = np.tanh(s) * q
        steps.append({"f": f, "g": g, "q": q, "z": z, "s_prev": s_prev, "s": s, "h": h})
    return steps


def _lstm_back(P, steps, direct_h):
    """The total gradients ∂L/∂h(t) and ∂L/∂s(t), t = 1..T, and of h(0) and s(0), for the loss
    whose gradient reaching each h(t) from its output is ``direct_h`` (T, H)."""
    T = len(steps)
    dh_all, ds_all = np.zeros_like(direct_h), np.zeros_like(direct_h)
    dh_future, ds_future = np.zeros(direct_h.shape[1]), np.zeros(direct_h.shape[1])
    for t in range(T, 0, -1):
        st = steps[t - 1]
        dh = dh_future + direct_h[t - 1]
        ds = ds_future + dh * st["q"] * (1 - np.tanh(st["s"]) ** 2)
        dh_all[t - 1], ds_all[t - 1] = dh, ds
        d_q = dh * np.tanh(st["s"]) * st["q"] * (1 - st["q"])
        d_f = ds * st["s_prev"] * st["f"] * (1 - st["f"])
        d_g = ds * st["z"] * st["g"] * (1 - st["g"])
        d_z = ds * st["g"] * (1 - st["z"] ** 2)
        dh_future = P["Wf"].T @ d_f + P["Wg"].T @ d_g + P["Wo"].T @ d_q + P["W"].T @ d_z
        ds_future = ds * st["f"]
    return dh_all, ds_all, dh_future, ds_future


def test_an_lstm_from_carried_h_and_s_over_a_windowed_run_every_number():
    """Both state parts carried undetached from an earlier run (the dict rnn.LSTM's run ends
    with, as truncated BPTT carries it), 40 steps: the page's gates, h(t), s(t), the gradients
    ∂L/∂h(t) and ∂L/∂s(t) (and of the carried h(0), s(0)), both heatmaps and the saturated
    gates and tanh units are numpy's, from those h(0) and s(0)."""
    model = MODELS["lstm"](6)
    for p in model.parameters():
        p.data *= 2.5
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    rng = np.random.default_rng(11)
    earlier = rng.integers(0, 6, 5)
    carried = model.run(earlier, rng.integers(0, 6, 5)).last
    h0, s0 = (np.asarray(carried[k].data, dtype=float).reshape(-1) for k in ("h", "s"))
    q0 = _lstm_forward(P, earlier, np.zeros(8), np.zeros(8))[-1]["q"]      # h(0) = tanh(s(0)) q
    xs, ys = rng.integers(0, 6, 40), rng.integers(0, 6, 40)
    b = viz.explore(model, xs, ys, h0=carried).data["bundles"][-1]
    assert len(b["windows"]) > 1

    steps = _lstm_forward(P, xs, h0, s0)
    h = np.array([st["h"] for st in steps])
    o = h @ P["V"].T + P["c"]
    probs = np.array([_softmax(r) for r in o])
    terms = -np.log(probs[np.arange(40), ys])
    direct = (probs - np.eye(6)[ys]) @ P["V"]
    dh, ds, dh0, ds0 = _lstm_back(P, steps, direct)
    V = b["vars"]
    assert b["loss"] == pytest.approx(terms.sum(), rel=RTOL)
    for name in ("h", "s", "f", "g", "q"):
        for t in (1, 20, 40):
            _close(V[name]["value"][str(t)], steps[t - 1][name], f"{name}({t})")
    _close(V["h"]["value"]["0"], h0, "the carried h(0)")
    _close(V["s"]["value"]["0"], s0, "the carried s(0)")
    _close([V["h"]["gnorm"][str(t)] for t in range(1, 41)], np.linalg.norm(dh, axis=1), "‖∂L/∂h(t)‖")
    _close([V["s"]["gnorm"][str(t)] for t in range(1, 41)], np.linalg.norm(ds, axis=1), "‖∂L/∂s(t)‖")
    # s(0) reaches L through h(0) = tanh(s(0)) q too: the carried nodes are the earlier run's
    ds0 = ds0 + dh0 * q0 * (1 - np.tanh(s0) ** 2)
    _close([V["h"]["gnorm"]["0"], V["s"]["gnorm"]["0"]], [np.linalg.norm(dh0), np.linalg.norm(ds0)],
           "the carried state's gradients")
    heat_h, heat_s = np.zeros((40, 40)), np.zeros((40, 40))
    for t in range(1, 41):
        one = np.zeros_like(direct)
        one[t - 1] = direct[t - 1]
        dh_t, ds_t, _, _ = _lstm_back(P, steps, one)
        heat_h[t - 1], heat_s[t - 1] = np.linalg.norm(dh_t, axis=1), np.linalg.norm(ds_t, axis=1)
    conn = b["diag"]["connectivity"]
    _close(np.ravel(conn["h"]["cells"]), np.ravel(heat_h), "connectivity of h")
    _close(np.ravel(conn["s"]["cells"]), np.ravel(heat_s), "connectivity of s")
    saturated = [(np.sum([np.sum(st[k] * (1 - st[k]) < 0.05 / 4) for k in "fgq"])
                  + np.sum(1 - st["z"] ** 2 < 0.05) + np.sum(1 - np.tanh(st["s"]) ** 2 < 0.05))
                 / (5 * len(st["h"])) for st in steps]
    assert max(saturated) > 0, "the check needs some saturated units"
    _close(b["diag"]["saturation"], saturated, "saturation of the gates and tanh units")


def test_the_demo_pages_gradient_norms_over_t_are_numpys(tmp_path):
    """The demo page's '‖∂L/∂h(t)‖ over 20 steps of a training sequence: from ... to ...' and its
    gradient-flow plot (viz.cli.write_model_views on the probe), and the copy table's
    ‖∂L/∂h(t)‖ of an LSTM (viz.opgraph.gradient_norms of a held-out run), against numpy BPTT."""
    from viz.cli import write_model_views
    from viz.opgraph import gradient_norms
    rng = np.random.default_rng(2)
    model = rnn.ElmanRNN(7, 9, 7, seed=5)
    for p in model.parameters():
        p.data *= 2.0
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    xs, ys = rng.integers(0, 7, (20, 1)), rng.integers(0, 7, (20, 1))
    _, norms = write_model_views(model, str(tmp_path), "chars", (xs, ys), {})
    h = _chain([P["U"][:, x] for x in xs[:, 0]], P["W"], P["b"], np.zeros(9))
    probs = np.array([_softmax(r) for r in h[1:] @ P["V"].T + P["c"]])
    gh = _back((probs - np.eye(7)[ys[:, 0]]) @ P["V"], h, P["W"])
    assert [t for t, _ in norms] == list(range(1, 21))
    np.testing.assert_allclose([n for _, n in norms], np.linalg.norm(gh, axis=1), rtol=1e-9)

    lstm = rnn.LSTM(3, 6, 3, seed=1)
    P = {n: p.data.copy() for n, p in lstm.named_parameters()}
    xs, ys = rng.integers(0, 3, (30, 1)), rng.integers(0, 3, (30, 1))
    norms = gradient_norms(lstm.run(xs, ys).loss)
    steps = _lstm_forward(P, xs[:, 0], np.zeros(6), np.zeros(6))
    probs = np.array([_softmax(P["c"] + P["V"] @ st["h"]) for st in steps])
    dh, _, _, _ = _lstm_back(P, steps, (probs - np.eye(3)[ys[:, 0]]) @ P["V"])
    np.testing.assert_allclose([n for _, n in norms], np.linalg.norm(dh, axis=1), rtol=1e-9)


def _reference_loss(name, model, args):
    """The loss of ``model`` on the explorer's inputs by the numpy references of tests/ (forward
    and BPTT written from the book's equations), for each design of `tinygraph explore`."""
    import bptt_reference as ref
    import bptt_reference_more as more
    P = {n: p.data for n, p in model.named_parameters()}
    if name == "esn":                  # the fixed reservoir is no parameter
        P.update(U=model.U.data, W=model.W.data, b=model.b.data)
        return more.echo_state(P, *args)[0]
    if name == "leaky":
        return more.leaky(P, *args, alpha=None, skip=model.skip)[0]
    if name == "deep":
        return more.deep_mlp(P, *args, hidden=1, skip=True)[0]
    if name == "memory":
        return more.memory(P, *args, slots=model.slots, width=model.width)[0]
    if name == "encdec":
        return ref.encoder_decoder(P, *args, start=model.n_out)[0]
    function = {"elman": ref.elman, "jordan": ref.jordan, "seq2one": ref.sequence_to_one,
                "vec2seq": ref.vector_to_sequence, "conditional": ref.conditional,
                "lstm": ref.lstm, "gru": ref.gru, "bidirectional": ref.bidirectional}[name]
    return function(P, *args)[0]


@pytest.mark.parametrize("name", sorted(set(EXPLORABLE) - {"system"}))
def test_the_explorers_loss_of_every_design_is_the_numpy_references(name):
    """The loss at the top of `tinygraph explore --model NAME`'s page (its 40 random steps, seed
    3), against tests/bptt_reference*.py; the system without input has no loss."""
    model = MODELS[name](3)
    args, kwargs = model_inputs(model, 40, 3)
    page = viz.explore(model, *args, **kwargs).data["bundles"][-1]["loss"]
    assert page == pytest.approx(_reference_loss(name, model, args), rel=RTOL)
