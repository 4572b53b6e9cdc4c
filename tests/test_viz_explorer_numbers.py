"""viz.explore's numbers checked against computations of this file alone: a numpy forward pass
written here, its Jacobians by hand and central differences.  Designs made of two chains (an
encoder-decoder's encoder and decoder, which may differ in length) and states carried from an
earlier chunk, where the page's numbers could belong to the wrong chain or the wrong step."""

import numpy as np

import rnn
import viz

EPS = 1e-6


def _encdec_states(P, xs, ys, n_out):
    """The encoder's h(1..n_x) and the decoder's s(1..n_y) of rnn.EncoderDecoder (no attention),
    in numpy: h(t) = tanh(b + W h(t-1) + U x(t)), C = h(n_x), s(0) = C,
    s(t) = tanh(bd + Wd s(t-1) + Ud y(t-1) + R C), y(0) the start id n_out."""
    h, hs = np.zeros(P["W"].shape[0]), []
    for x in xs:
        h = np.tanh(P["b"] + P["W"] @ h + P["U"][:, x])
        hs.append(h)
    C, s, ss = h, h, []
    for y_prev in [n_out] + list(ys[:-1]):
        s = np.tanh(P["bd"] + P["Wd"] @ s + P["Ud"][:, y_prev] + P["R"] @ C)
        ss.append(s)
    return np.array(hs), np.array(ss)


def _lag_norms(jacs, max_lag):
    """‖J(T) J(T-1) ... J(T-k+1)‖₂ for k = 1..max_lag: the lag decay of one end step, T."""
    out, product = [], np.eye(jacs.shape[1])
    for k in range(max_lag):
        product = product @ jacs[-1 - k]
        out.append(np.linalg.norm(product, 2))
    return np.array(out)


def test_an_encoder_decoder_whose_chains_differ_in_length_has_each_chains_own_jacobians():
    """n_x = 5, n_y = 3: the page crashed with "rnn.lag_decay: max_lag must be in 1..3, got 5"
    for part="s" (and "1..2, got 4" for part="h" with n_x = 2, n_y = 4): the lag decay was
    asked for lags up to the longer chain's length.  Each chain's Jacobians are its own,
    J(t) = diag(1 - v(t)²) W of its own states, and the lag decay runs over its own steps."""
    model = rnn.EncoderDecoder(4, 3, 4, seed=1)
    P = {n: p.data for n, p in model.named_parameters()}
    for part, xs, ys in (("s", [0, 1, 2, 3, 1], [1, 2, 3]), ("h", [2, 0], [1, 2, 3, 0])):
        xs, ys = np.array(xs), np.array(ys)
        hs, ss = _encdec_states(P, xs, ys, 4)
        chain, W = (ss, P["Wd"]) if part == "s" else (hs, P["W"])
        jacs = np.stack([(1 - v ** 2)[:, None] * W for v in chain])
        diag = viz.explore(model, xs, ys, part=part).data["bundles"][-1]["diag"]
        np.testing.assert_allclose(diag["spectra"]["norm"],
                                   [np.linalg.norm(J, 2) for J in jacs], rtol=1e-5)
        np.testing.assert_allclose(diag["spectra"]["radius"],
                                   [np.abs(np.linalg.eigvals(J)).max() for J in jacs], rtol=1e-5)
        assert diag["lag"]["lags"] == list(range(1, len(chain) + 1))
        np.testing.assert_allclose(diag["lag"]["norms"], _lag_norms(jacs, len(chain)), rtol=1e-5)
