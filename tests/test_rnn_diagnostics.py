"""Gradient diagnostics (rnn.connectivity, jacobians, spectra, lag_decay, saturation,
gradient_ratio) against oracles that could fail: central differences of hand-written numpy
forward passes with a perturbation injected into the state at one step, and closed forms
(∂h(t)/∂h(t-1) = diag(1 - h(t)²) W for the tanh recurrences)."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
from test_rnn_cells import user_gru, user_lstm

EPS = 1e-6


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _ce(o, y):
    z = o - o.max()
    return float(np.log(np.exp(z).sum()) - z[y])


def elman_losses(P, xs, ys, at=None, delta=None):
    """Per-step losses of an Elman RNN on one sequence of ids, with ``delta`` added to h(at)."""
    h = np.zeros(P["W"].shape[0])
    losses = []
    for t, (x, y) in enumerate(zip(xs, ys), start=1):
        h = np.tanh(P["b"] + P["W"] @ h + P["U"][:, x])
        if t == at:
            h = h + delta
        losses.append(_ce(P["c"] + P["V"] @ h, y))
    return losses


def lstm_losses(P, xs, ys, part, at=None, delta=None):
    """Per-step losses of the user LSTM of test_rnn_cells on float inputs, ``delta`` added to
    state part ``part`` ("s" or "h") at step ``at``."""
    H = P["W"].shape[0]
    state = {"s": np.zeros(H), "h": np.zeros(H)}
    losses = []
    for t, (x, y) in enumerate(zip(xs, ys), start=1):
        h = state["h"]
        gate = {g: _sigmoid(P[f"U{g}"] @ x + P[f"b{g}"] + P[f"W{g}"] @ h) for g in "fgo"}
        s = gate["f"] * state["s"] + gate["g"] * np.tanh(P["U"] @ x + P["b"] + P["W"] @ h)
        if t == at and part == "s":      # h(t) is computed from the perturbed s(t)
            s = s + delta
        state = {"s": s, "h": np.tanh(s) * gate["o"]}
        if t == at and part == "h":
            state["h"] = state["h"] + delta
        losses.append(_ce(P["c"] + P["V"] @ state["h"], y))
    return losses


def fd_gradient(losses_fn, size, at, t):
    """∂L(t)/∂h(at) by central differences of ``losses_fn(at, delta)`` (t None: the whole loss)."""
    g = np.zeros(size)
    for i in range(size):
        d = np.zeros(size)
        d[i] = EPS
        up, down = losses_fn(at, d), losses_fn(at, -d)
        g[i] = ((sum(up) - sum(down)) if t is None else (up[t - 1] - down[t - 1])) / (2 * EPS)
    return g


def _elman(seed=0, steps=6, n=4, hidden=3):
    model = rnn.ElmanRNN(n, hidden, n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    xs, ys = rng.integers(0, n, steps), rng.integers(0, n, steps)
    params = {k: v.data for k, v in model.named_parameters()}
    return model, params, xs, ys


def _lstm_data(steps=5):
    cell, P = user_lstm(seed=3)
    rng = np.random.default_rng(4)
    xs = rng.normal(size=(steps, P["U"].shape[1]))
    ys = rng.integers(0, P["V"].shape[0], steps)
    return cell, {k: v.data for k, v in P.items()}, xs, ys


# ------------------------------------------------------------------ connectivity

def test_connectivity_of_elman_equals_finite_differences_of_each_loss_term():
    model, P, xs, ys = _elman()
    C = rnn.connectivity(model, xs, ys)
    T, H = len(xs), P["W"].shape[0]
    expected = np.zeros((T, T))
    for t in range(1, T + 1):
        for k in range(1, t + 1):
            g = fd_gradient(lambda at, d: elman_losses(P, xs, ys, at, d), H, k, t)
            expected[t - 1, k - 1] = np.linalg.norm(g)
    np.testing.assert_allclose(C, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("part", ["s", "h"])
def test_connectivity_of_a_user_lstm_equals_finite_differences_for_each_state_part(part):
    cell, P, xs, ys = _lstm_data()
    C = rnn.connectivity(cell, xs, ys, part=part)
    T, H = len(xs), P["W"].shape[0]
    for t in range(1, T + 1):
        for k in range(1, T + 1):
            g = fd_gradient(lambda at, d: lstm_losses(P, xs, ys, part, at, d), H, k, t)
            assert C[t - 1, k - 1] == pytest.approx(np.linalg.norm(g), rel=1e-6, abs=1e-9)


def test_connectivity_is_zero_above_the_diagonal_and_its_diagonal_is_the_output_layer():
    model, P, xs, ys = _elman(steps=8)
    C = rnn.connectivity(model, xs, ys)
    assert np.all(np.triu(C, 1) == 0)
    run = model.run(xs)
    for t, (o, y) in enumerate(zip(run.outputs, ys)):
        p = np.exp(o.data - o.data.max())
        p /= p.sum()
        p[y] -= 1.0                      # ∂L(t)/∂o(t) = softmax(o) - onehot(y)
        assert C[t, t] == pytest.approx(np.linalg.norm(P["V"].T @ p), rel=1e-12)


def test_connectivity_of_sequence_to_one_has_only_the_last_row():
    model = rnn.SequenceToOne(4, 3, 2, seed=1)
    C = rnn.connectivity(model, np.array([0, 3, 1, 2]), 1)
    assert np.all(C[:-1] == 0) and np.all(C[-1] > 0)


def test_connectivity_rows_computes_only_the_loss_terms_asked_for():
    model, _, xs, ys = _elman(steps=7)
    full = rnn.connectivity(model, xs, ys)
    some = rnn.connectivity(model, xs, ys, rows=[2, 7])
    # one sweep for fewer rows may round its products differently in the last bit
    np.testing.assert_allclose(some[[1, 6]], full[[1, 6]], rtol=1e-13, atol=1e-16)
    assert np.isnan(some[[0, 2, 3, 4, 5]]).all()
    with pytest.raises(tg.ShapeError, match="1..7"):
        rnn.connectivity(model, xs, ys, rows=[8])


def test_connectivity_of_an_unknown_part_names_the_parts():
    model, _, xs, ys = _elman()
    with pytest.raises(tg.ConfigError, match=r"no variable 'g'.*\['h'\]"):
        rnn.connectivity(model, xs, ys, part="g")


def test_connectivity_of_a_state_that_needs_no_gradient_says_so_instead_of_zeros():
    model = rnn.EchoStateNetwork(4, 3, 4, seed=1)       # U and W fixed: h(t) needs no gradient
    xs, ys = np.array([0, 1, 2]), np.zeros((3, 4))
    with pytest.raises(tg.ConfigError, match="'h' needs no gradient.*h0"):
        rnn.connectivity(model, xs, ys)


# ------------------------------------------------------------------ Jacobians

def _tanh_designs():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 4, 6)
    return [
        ("elman", rnn.ElmanRNN(4, 3, 4, seed=2), (ids,), {}),
        ("elman_floats_h0", rnn.ElmanRNN(2, 3, 4, seed=2), (rng.normal(size=(6, 2)),),
         {"h0": rng.normal(size=3)}),
        ("seq2one", rnn.SequenceToOne(4, 3, 2, seed=2), (ids,), {}),
        ("vec2seq", rnn.VectorToSequence(2, 3, 4, seed=2), (rng.normal(size=2),), {"ys": ids}),
        ("conditional", rnn.ConditionalRNN(4, 3, 4, seed=2), (ids,), {"ys": ids}),
    ]


@pytest.mark.parametrize("name, model, args, kwargs", _tanh_designs(),
                         ids=[d[0] for d in _tanh_designs()])
def test_jacobians_of_tanh_recurrences_are_diag_one_minus_h_squared_times_W(name, model, args,
                                                                            kwargs):
    J = rnn.jacobians(model, *args, **kwargs)
    run_args = args + ((kwargs["ys"],) if "ys" in kwargs else ())
    hs = [h.data.reshape(-1) for h in model.run(*run_args, **({"h0": kwargs["h0"]} if "h0" in
                                                             kwargs else {})).parts["h"]]
    assert J.shape == (len(hs), 3, 3)
    for t, h in enumerate(hs):
        np.testing.assert_allclose(J[t], (1 - h ** 2)[:, None] * model.W.data, rtol=1e-14,
                                   atol=1e-15)


def test_jacobians_of_a_user_lstm_equal_finite_differences_of_one_step():
    cell, P, xs, ys = _lstm_data(steps=4)
    H = P["W"].shape[0]
    for part in ("h", "s"):
        J = rnn.jacobians(cell, xs, part=part)
        for t in range(1, len(xs) + 1):
            fd = np.zeros((H, H))
            for j in range(H):
                d = np.zeros(H)
                d[j] = EPS
                up = _lstm_states(P, xs, part, t - 1, d)[t - 1][part]
                down = _lstm_states(P, xs, part, t - 1, -d)[t - 1][part]
                fd[:, j] = (up - down) / (2 * EPS)
            np.testing.assert_allclose(J[t - 1], fd, rtol=1e-6, atol=1e-9)


def _lstm_states(P, xs, part, at, delta):
    """States of the numpy LSTM after every step, ``delta`` added to ``part`` after step ``at``
    (at = 0: to the initial state)."""
    H = P["W"].shape[0]
    state = {"s": np.zeros(H), "h": np.zeros(H)}
    if at == 0:
        state[part] = state[part] + delta
    out = []
    for t, x in enumerate(xs, start=1):
        h = state["h"]
        gate = {g: _sigmoid(P[f"U{g}"] @ x + P[f"b{g}"] + P[f"W{g}"] @ h) for g in "fgo"}
        s = gate["f"] * state["s"] + gate["g"] * np.tanh(P["U"] @ x + P["b"] + P["W"] @ h)
        state = {"s": s, "h": np.tanh(s) * gate["o"]}
        out.append(state)
        if t == at:
            state = dict(state)
            state[part] = state[part] + delta
    return out


def test_jacobians_of_a_user_gru_equal_finite_differences_through_the_model():
    cell, P = user_gru(seed=6)
    rng = np.random.default_rng(7)
    xs = rng.normal(size=(3, P["U"].shape[1]))
    J = rnn.jacobians(cell, xs)
    with tg.no_grad():
        hs = [np.zeros(4)] + [h.data for h in cell.run(xs).parts["h"]]
    for t in range(1, 4):
        fd = np.zeros((4, 4))
        for j in range(4):
            d = np.zeros(4)
            d[j] = EPS
            with tg.no_grad():
                up = cell.run(xs[t - 1:t], h0=hs[t - 1] + d).last.data
                down = cell.run(xs[t - 1:t], h0=hs[t - 1] - d).last.data
            fd[:, j] = (up - down) / (2 * EPS)
        np.testing.assert_allclose(J[t - 1], fd, rtol=1e-6, atol=1e-9)


def test_jacobians_need_a_batch_of_one():
    model = rnn.ElmanRNN(4, 3, 4)
    with pytest.raises(tg.ShapeError, match="batch of one"):
        rnn.jacobians(model, np.zeros((5, 2), dtype=int))


def _bidirectional_chains(P, xs, at=None, delta=None, part="h"):
    """h(1..T) and g(1..T) of a bidirectional net (numpy, ids in), ``delta`` added to part(at)
    (at = 0 is h(0), at = T + 1 is g(T + 1))."""
    T, H = len(xs), P["W"].shape[0]
    h, g = np.zeros(H), np.zeros(H)
    hs, gs = [], [None] * T
    if part == "h" and at == 0:
        h = h + delta
    for t in range(1, T + 1):
        h = np.tanh(P["b"] + P["W"] @ h + P["U"][:, xs[t - 1]])
        if part == "h" and at == t:
            h = h + delta
        hs.append(h)
    if part == "g" and at == T + 1:
        g = g + delta
    for t in range(T, 0, -1):
        g = np.tanh(P["bg"] + P["Wg"] @ g + P["Ug"][:, xs[t - 1]])
        if part == "g" and at == t:
            g = g + delta
        gs[t - 1] = g
    return hs, gs


def test_jacobians_of_the_bidirectional_nets_two_chains_equal_central_differences():
    """Each chain's own step: ∂h(t)/∂h(t-1) forward, ∂g(t)/∂g(t+1) backward (in time order),
    against central differences of a numpy forward pass (before: a ConfigError, 'its
    Jacobians are not available')."""
    model = rnn.BidirectionalRNN(4, 3, 4, seed=1)
    P = {n: p.data for n, p in model.named_parameters()}
    xs = np.random.default_rng(0).integers(0, 4, 5)
    T, H = len(xs), 3
    for part, prev in (("h", -1), ("g", +1)):
        J = rnn.jacobians(model, xs, part=part)
        assert J.shape == (T, H, H)
        index = 0 if part == "h" else 1
        for t in range(1, T + 1):
            fd = np.zeros((H, H))
            for j in range(H):
                e = np.zeros(H)
                e[j] = EPS
                up = _bidirectional_chains(P, xs, t + prev, e, part)[index][t - 1]
                down = _bidirectional_chains(P, xs, t + prev, -e, part)[index][t - 1]
                fd[:, j] = (up - down) / (2 * EPS)
            np.testing.assert_allclose(J[t - 1], fd, rtol=1e-7, atol=1e-9)


def test_jacobians_of_a_design_without_state_parts_say_so():
    with pytest.raises(tg.ConfigError, match=r"no state part 'h'.*\[\]"):
        rnn.jacobians(rnn.JordanRNN(4, 3, 4), np.zeros(3, dtype=int), ys=np.zeros(3, dtype=int))


def test_jacobians_leave_the_model_as_it_was():
    model, _, xs, ys = _elman()
    before = model.state_dict()
    rnn.jacobians(model, xs)
    assert "step" not in vars(model)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert model.loss(xs, ys).item() == pytest.approx(sum(elman_losses(
        {k: v for k, v in before.items()}, xs, ys)), rel=1e-12)


# ------------------------------------------------------------------ spectra and lag decay

def test_spectra_are_the_largest_singular_value_and_largest_eigenvalue_modulus():
    jacs = np.array([[[0.0, 2.0], [0.0, 0.0]],          # nilpotent: norm 2, radius 0
                     [[0.0, -0.5], [0.5, 0.0]],          # rotation by 90 degrees times 0.5
                     [[3.0, 0.0], [0.0, -4.0]]])
    norms, radii = rnn.spectra(jacs)
    np.testing.assert_allclose(norms, [2.0, 0.5, 4.0], rtol=1e-14)
    np.testing.assert_allclose(radii, [0.0, 0.5, 4.0], rtol=1e-14, atol=1e-15)


def test_lag_decay_of_a_scaled_rotation_is_its_scale_to_the_power_of_the_lag():
    theta, rho = 0.3, 0.8
    Q = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    decay = rnn.lag_decay(np.repeat((rho * Q)[None], 30, axis=0), max_lag=12)
    np.testing.assert_allclose(decay.norms, rho ** np.arange(1, 13), rtol=1e-12)
    assert decay.rate == pytest.approx(rho, rel=1e-12)
    assert decay.scale == pytest.approx(1.0, rel=1e-10)


def test_lag_decay_norms_are_the_norms_of_dh_t_dh_t_minus_k_by_finite_differences():
    model, P, xs, _ = _elman(steps=6, hidden=3)
    J = rnn.jacobians(model, xs)
    decay = rnn.lag_decay(J, max_lag=3, ends=1)        # one end step: t = T
    T, H = len(xs), 3

    def h_last(at, d):
        h = np.zeros(H)
        for t, x in enumerate(xs, start=1):
            h = np.tanh(P["b"] + P["W"] @ h + P["U"][:, x])
            if t == at:
                h = h + d
        return h
    for k in (1, 2, 3):
        fd = np.zeros((H, H))
        for j in range(H):
            d = np.zeros(H)
            d[j] = EPS
            fd[:, j] = (h_last(T - k, d) - h_last(T - k, -d)) / (2 * EPS)
        assert decay.norms[k - 1] == pytest.approx(np.linalg.norm(fd, 2), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.5, "learned"])
def test_jacobians_of_a_skip_connection_of_delay_one_include_its_path(alpha):
    # LeakyRNN(skip=1) reads h(t-1) twice, through W and through Wd: its one-step Jacobian is
    # alpha I + (1 - alpha) diag(1 - v(t)^2) (W + Wd).  The cut step gave the skip's read a
    # leaf of its own and held it fixed: J missed Wd (off by 0.45 here), and the lag decay,
    # the spectra and eq. 10.52's ratio with it
    model = rnn.LeakyRNN(3, 4, 3, skip=1, alpha=alpha, seed=2)
    xs = np.array([0, 1, 2, 1, 0, 2])
    J = rnn.jacobians(model, xs)
    a = model.alpha
    h, hs, vs = np.zeros(4), [], []
    for x in xs:         # numpy forward pass
        v = np.tanh(model.b.data + model.W.data @ h + model.Wd.data @ h + model.U.data[:, x])
        h = a * h + (1 - a) * v
        hs.append(h)
        vs.append(v)
    for t, v in enumerate(vs):
        want = np.diag(np.broadcast_to(a, 4)) + ((1 - a) * (1 - v ** 2))[:, None] * (
            model.W.data + model.Wd.data)
        np.testing.assert_allclose(J[t], want, rtol=1e-12, atol=1e-14)
    # the lag decay is then the norm of dh(T)/dh(T-k) exactly (central differences)
    decay = rnn.lag_decay(J, max_lag=3, ends=1)

    def h_last(at, d):
        h = np.zeros(4)
        for t, x in enumerate(xs, start=1):
            h = a * h + (1 - a) * np.tanh(model.b.data + (model.W.data + model.Wd.data) @ h
                                          + model.U.data[:, x])
            if t == at:
                h = h + d
        return h
    for k in (1, 2, 3):
        fd = np.zeros((4, 4))
        for j in range(4):
            d = np.zeros(4)
            d[j] = EPS
            fd[:, j] = (h_last(len(xs) - k, d) - h_last(len(xs) - k, -d)) / (2 * EPS)
        assert decay.norms[k - 1] == pytest.approx(np.linalg.norm(fd, 2), rel=1e-6)


def test_lag_decay_through_a_jacobian_of_exactly_zero_is_zero_with_rate_zero_not_a_fit():
    # J(3) = 0 (tanh units at exactly ±1): every product through it is exactly 0.  Its norm was
    # clamped to 2.2e-308 and fitted: norms 2.2e-308 and, where all lags were clamped, rate
    # 1.0 (the explorer said "exploding" of a gradient that is gone)
    rng = np.random.default_rng(0)
    jacs = rng.normal(size=(5, 3, 3))
    jacs[2] = 0.0
    decay = rnn.lag_decay(jacs, max_lag=3, ends=1)          # end step t = 5
    want = [np.linalg.norm(jacs[4], 2), np.linalg.norm(jacs[4] @ jacs[3], 2), 0.0]
    np.testing.assert_allclose(decay.norms, want, rtol=1e-12)
    assert decay.norms[2] == 0.0 and decay.rate == 0.0 and np.isnan(decay.scale)
    decay = rnn.lag_decay(jacs[:3], max_lag=2, ends=1)      # end step t = 3: zero from lag 1
    assert decay.norms.tolist() == [0.0, 0.0] and decay.rate == 0.0
    decay = rnn.lag_decay(jacs[3:], max_lag=2, ends=1)      # no zero: the fit as before
    assert decay.rate > 0 and np.isfinite(decay.scale)


def test_lag_decay_refuses_a_lag_longer_than_the_run():
    with pytest.raises(tg.ShapeError, match="max_lag"):
        rnn.lag_decay(np.zeros((4, 2, 2)), max_lag=5)


# ------------------------------------------------------------------ saturation, eq. 10.52

def test_saturation_of_elman_is_the_fraction_of_flat_tanh_units():
    model, _, xs, ys = _elman(steps=10, hidden=6)
    model.W.data *= 4.0
    model.U.data *= 4.0
    sat = rnn.saturation(model, xs, ys, tol=0.05)
    hs = np.array([h.data for h in model.run(xs).parts["h"]])
    np.testing.assert_array_equal(sat, np.mean(1 - hs ** 2 < 0.05, axis=1))
    assert 0 < sat.max()


def test_saturation_at_a_step_with_nan_units_is_nan_not_the_share_of_the_others():
    # a NaN in x(3) makes h(3..6) NaN: 1 - NaN² < tol is False, so those steps counted no
    # saturated unit and showed 0.0, a number for units that have none
    model, _, xs, ys = _elman(steps=6, hidden=4)
    xs = np.eye(4)[xs]               # one-hot vectors, to hold a NaN
    xs[2, 0] = np.nan
    model.W.data *= 4.0
    sat = rnn.saturation(model, xs, ys, tol=0.05)
    hs = np.array([h.data for h in model.run(xs).parts["h"]])
    assert np.isnan(hs[2:]).all() and np.isfinite(hs[:2]).all()
    np.testing.assert_array_equal(sat[:2], np.mean(1 - hs[:2] ** 2 < 0.05, axis=1))
    assert np.isnan(sat[2:]).all()


def test_saturation_of_a_user_lstm_counts_its_gates_and_both_tanh():
    cell, P, xs, ys = _lstm_data()
    sat = rnn.saturation(cell, xs, ys, tol=0.5)
    states = _lstm_states(P, xs, "h", -1, 0.0)          # no perturbation
    previous = [{"s": np.zeros(4), "h": np.zeros(4)}] + states[:-1]
    expected = []
    for x, before, after in zip(xs, previous, states):
        h = before["h"]
        gates = [_sigmoid(P[f"U{g}"] @ x + P[f"b{g}"] + P[f"W{g}"] @ h) for g in "fgo"]
        cand = np.tanh(P["U"] @ x + P["b"] + P["W"] @ h)
        flat = sum(np.count_nonzero(g * (1 - g) < 0.5 * 0.25) for g in gates)
        flat += np.count_nonzero(1 - cand ** 2 < 0.5)
        flat += np.count_nonzero(1 - np.tanh(after["s"]) ** 2 < 0.5)
        expected.append(flat / 20)                      # 5 saturating ops of 4 units per step
    np.testing.assert_allclose(sat, expected, rtol=1e-15)
    assert 0 < max(expected) < 1


def test_gradient_ratio_equals_finite_differences_times_the_closed_form_jacobian():
    model, P, xs, ys = _elman(steps=6)
    ratio = rnn.gradient_ratio(model, xs, ys)
    hs = [h.data for h in model.run(xs).parts["h"]]
    for t in range(1, len(xs) + 1):
        g = fd_gradient(lambda at, d: elman_losses(P, xs, ys, at, d), 3, t, None)
        J = (1 - hs[t - 1] ** 2)[:, None] * P["W"]
        assert ratio[t - 1] == pytest.approx(np.linalg.norm(g @ J) / np.linalg.norm(g), rel=1e-6)


def test_connectivity_without_targets_says_it_needs_them():
    model, _, xs, _ = _elman()
    with pytest.raises(tg.ConfigError, match="give targets ys"):
        rnn.connectivity(model, xs, None)


def test_diagnostics_of_something_that_is_not_a_model_name_what_they_got():
    with pytest.raises(tg.DTypeError, match="got list"):
        rnn.connectivity([1, 2], np.zeros(3, dtype=int), np.zeros(3, dtype=int))
    with pytest.raises(tg.DTypeError, match="got str"):
        rnn.jacobians("elman", np.zeros(3, dtype=int))


@pytest.mark.parametrize("name, call", [
    ("rnn.connectivity", lambda m, tree, y: rnn.connectivity(m, tree, y)),
    ("rnn.jacobians", lambda m, tree, y: rnn.jacobians(m, tree, ys=y)),
    ("rnn.spectra", lambda m, tree, y: rnn.spectra(m)),
    ("rnn.lag_decay", lambda m, tree, y: rnn.lag_decay(m)),
    ("rnn.saturation", lambda m, tree, y: rnn.saturation(m, tree, y)),
    ("rnn.gradient_ratio", lambda m, tree, y: rnn.gradient_ratio(m, tree, y)),
])
def test_diagnostics_in_time_refuse_a_recursive_net_naming_the_function_and_the_model(name, call):
    # connectivity and gradient_ratio raised a bare TypeError (None + int), spectra and
    # lag_decay one from float(), and saturation returned an empty array without a word
    model = rnn.RecursiveNet(2, 4, 2, seed=0)
    tree, y = rnn.problems.parity_trees(2, leaves=4, seed=0)
    with pytest.raises(tg.ConfigError) as caught:
        call(model, tree, y)
    for word in [name, "RecursiveNet", "tree, not a chain in time"]:
        assert word in str(caught.value)


@pytest.mark.parametrize("name, call", [
    ("rnn.connectivity", lambda m, xs, ys: rnn.connectivity(m, xs, ys, h0=np.zeros(4))),
    ("rnn.saturation", lambda m, xs, ys: rnn.saturation(m, xs, ys, h0=np.zeros(4))),
    ("rnn.gradient_ratio", lambda m, xs, ys: rnn.gradient_ratio(m, xs, ys, h0=np.zeros(4))),
])
def test_diagnostics_with_an_h0_the_model_does_not_take_name_the_argument(name, call):
    # a bare TypeError from EncoderDecoder.run (it starts from zeros and C)
    model = rnn.EncoderDecoder(3, 4, 3)
    with pytest.raises(tg.ConfigError, match=name.replace(".", r"\.")
                       + r": EncoderDecoder\.run takes no h0="):
        call(model, np.array([0, 1, 2]), np.array([1, 2]))


def test_spectra_and_lag_decay_of_a_model_instead_of_jacobians_say_so():
    model = rnn.ElmanRNN(3, 4, 3)
    for function in (rnn.spectra, rnn.lag_decay):
        with pytest.raises(tg.ConfigError, match=r"Jacobians \(T, H, H\) from rnn.jacobians.*"
                                                 "ElmanRNN"):
            function(model)
        with pytest.raises(tg.ShapeError, match=r"\(T, H, H\).*\(3, 4\)"):
            function(np.zeros((3, 4)))


def test_spectra_and_lag_decay_of_jacobians_that_are_no_stack_name_what_they_got():
    # a ragged list was a bare numpy ValueError ("inhomogeneous shape"), NaN or inf in a
    # Jacobian (a diverged run) a bare LinAlgError "SVD did not converge"
    for function in (rnn.spectra, rnn.lag_decay):
        name = f"rnn.{function.__name__}"
        with pytest.raises(tg.ShapeError, match=name + r": jacs must be .*\(T, H, H\)"):
            function([np.eye(2), np.eye(3)])
        for bad in (np.nan, np.inf):
            jacs = np.ones((4, 2, 2))
            jacs[2, 1, 0] = bad
            with pytest.raises(tg.AnomalyError, match=name + r": .*J\(3\).*not finite"):
                function(jacs)


@pytest.mark.parametrize("setting, value", [("max_lag", 2.5), ("max_lag", "3"),
                                            ("max_lag", True), ("ends", 2.5), ("ends", 0),
                                            ("ends", -1), ("ends", "4")])
def test_lag_decay_refuses_a_setting_that_is_no_whole_count(setting, value):
    # max_lag 2.5 was cut to 2 and "3" read as 3 without a word; ends 0 gave a rate of NaN
    # (a mean of no end steps), 2.5 and -1 bare numpy errors from linspace
    with pytest.raises(tg.ConfigError, match=rf"rnn\.lag_decay: {setting} must be"):
        rnn.lag_decay(np.full((4, 2, 2), 0.5), **{setting: value})


# ------------------------------------------------------------------ connectivity of every design

def _every_design():
    rng = np.random.default_rng(7)
    ids, floats = rng.integers(0, 4, 5), rng.normal(size=(5, 3))
    lstm, _ = user_lstm(seed=5)
    return [("elman", rnn.ElmanRNN(4, 3, 4, seed=1), (ids, ids)),
            ("jordan", rnn.JordanRNN(4, 3, 4, seed=1), (ids, ids)),
            ("seq2one", rnn.SequenceToOne(4, 3, 2, seed=1), (ids, 1)),
            ("vec2seq", rnn.VectorToSequence(3, 3, 4, seed=1), (floats[0], ids)),
            ("conditional", rnn.ConditionalRNN(4, 3, 4, seed=1), (ids, ids)),
            ("lstm", rnn.LSTM(4, 3, 4, seed=1), (ids, ids)),
            ("gru", rnn.GRU(4, 3, 4, seed=1), (ids, ids)),
            ("bidirectional", rnn.BidirectionalRNN(4, 3, 4, seed=1), (ids, ids)),
            ("encdec", rnn.EncoderDecoder(4, 3, 4, seed=1), (ids, ids[:3])),
            ("deep", rnn.DeepRNN(4, 3, 4, kind="skip", seed=1), (ids, ids)),
            ("leaky", rnn.LeakyRNN(4, 3, 4, skip=2, seed=1), (ids, ids)),
            ("esn", rnn.EchoStateNetwork(4, 3, 4, seed=1), (ids, rng.normal(size=(5, 4)),
                                                            {"h0": tg.tensor(np.zeros(3), requires_grad=True)})),
            ("memory", rnn.MemoryNetwork(4, 3, 4, slots=3, width=2, seed=1), (ids, ids)),
            ("user_lstm", lstm, (floats, ids))]


def _split(args):
    """(xs, ys) and the keyword arguments of a design's entry (an h0 that requires grad)."""
    return (args[:2], args[2]) if len(args) == 3 else (args, {})


def _per_term_backward(model, args, part):
    """‖∂L(t)/∂part(k)‖ by ``L(t).backward()`` of each loss term on a fresh run, reading the
    retained ``.grad`` of every state: the engine's own gradient, by another route."""
    args, kwargs = _split(args)
    run = model.run(*args, **kwargs)
    states = run.parts.get(part) or [n for n in run.states]
    height = max(rnn.core.time_step(l.scope) for l in run.losses)
    out = np.zeros((height, len(states)))
    for loss in run.losses:
        for node in states:
            node.grad = None
            node.retain_grad()
        loss.backward(retain_graph=True)
        t = rnn.core.time_step(loss.scope)
        for k, node in enumerate(states, start=1):
            out[t - 1, k - 1] = 0.0 if node.grad is None else np.linalg.norm(node.grad)
    return out


@pytest.mark.parametrize("name, model, args", _every_design(), ids=[d[0] for d in _every_design()])
def test_connectivity_of_every_design_and_part_is_each_loss_terms_own_backward(name, model, args):
    parts = list(getattr(model, "parts", {}) or {"h": None})
    for part in parts:
        C = rnn.connectivity(model, *_split(args)[0], part=part, **_split(args)[1])
        expected = _per_term_backward(model, args, part)
        assert C.shape == expected.shape, part
        np.testing.assert_allclose(C, expected, rtol=1e-12, atol=1e-15, err_msg=part)
        assert np.count_nonzero(C) > 0, part


def bidirectional_losses(P, xs, ys, part=None, at=None, delta=None):
    """Per-step losses of figure 10.11 in numpy, ``delta`` added to h(at) or g(at)."""
    T, H = len(xs), P["W"].shape[0]
    h, g = np.zeros((T + 1, H)), np.zeros((T + 2, H))
    for t in range(1, T + 1):
        h[t] = np.tanh(P["b"] + P["W"] @ h[t - 1] + P["U"][:, xs[t - 1]])
        if part == "h" and t == at:
            h[t] = h[t] + delta
    for t in range(T, 0, -1):
        g[t] = np.tanh(P["bg"] + P["Wg"] @ g[t + 1] + P["Ug"][:, xs[t - 1]])
        if part == "g" and t == at:
            g[t] = g[t] + delta
    return [_ce(P["c"] + P["V"] @ np.concatenate([h[t], g[t]]), ys[t - 1]) for t in range(1, T + 1)]


@pytest.mark.parametrize("part", ["h", "g"])
def test_connectivity_of_the_bidirectional_network_equals_finite_differences_k_after_t_too(part):
    model = rnn.BidirectionalRNN(4, 3, 4, seed=2)
    P = {k: v.data for k, v in model.named_parameters()}
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, 4, 5), rng.integers(0, 4, 5)
    C = rnn.connectivity(model, xs, ys, part=part)
    expected = np.zeros((5, 5))
    for t in range(1, 6):
        for k in range(1, 6):
            g = fd_gradient(lambda at, d: bidirectional_losses(P, xs, ys, part, at, d), 3, k, t)
            expected[t - 1, k - 1] = np.linalg.norm(g)
    np.testing.assert_allclose(C, expected, rtol=1e-6, atol=1e-9)
    after, before = np.triu_indices(5, 1), np.tril_indices(5, -1)   # k > t, k < t
    reaching, cut = (after, before) if part == "g" else (before, after)   # g(k) feeds L(t <= k)
    assert np.all(C[reaching] > 0) and np.all(C[cut] == 0)


def encdec_losses(P, xs, ys, part=None, at=None, delta=None):
    """Per-step losses of figure 10.12 in numpy, ``delta`` added to h(at) or s(at)."""
    H, n_out = P["W"].shape[0], P["V"].shape[0]
    h = np.zeros(H)
    for k, x in enumerate(xs, start=1):
        h = np.tanh(P["b"] + P["W"] @ h + P["U"][:, x])
        if part == "h" and k == at:
            h = h + delta
    C, s, prev, losses = h, h, n_out, []
    for t, y in enumerate(ys, start=1):
        s = np.tanh(P["bd"] + P["Wd"] @ s + P["Ud"][:, prev] + P["R"] @ C)
        if part == "s" and t == at:
            s = s + delta
        losses.append(_ce(P["c"] + P["V"] @ s, y))
        prev = y
    return losses


@pytest.mark.parametrize("part, shape", [("h", (4, 6)), ("s", (4, 4))])
def test_connectivity_of_the_encoder_decoder_is_n_y_by_n_x_and_equals_finite_differences(part, shape):
    model = rnn.EncoderDecoder(4, 3, 4, seed=2)
    P = {k: v.data for k, v in model.named_parameters()}
    rng = np.random.default_rng(5)
    xs, ys = rng.integers(0, 4, 6), rng.integers(0, 4, 4)
    C = rnn.connectivity(model, xs, ys, part=part)
    assert C.shape == shape
    expected = np.zeros(shape)
    for t in range(1, shape[0] + 1):
        for k in range(1, shape[1] + 1):
            g = fd_gradient(lambda at, d: encdec_losses(P, xs, ys, part, at, d), 3, k, t)
            expected[t - 1, k - 1] = np.linalg.norm(g)
    np.testing.assert_allclose(C, expected, rtol=1e-6, atol=1e-9)
    if part == "h":
        assert np.all(C > 0)             # every decoder loss depends on every encoder state


def test_diagnostics_of_a_run_from_a_carried_state_are_those_of_its_values():
    model, _, xs, ys = _elman(steps=7)
    earlier = model.run(xs[:4], ys[:4])
    carried = earlier.last                # not detached: the earlier run is behind it
    detached = carried.data.copy()
    np.testing.assert_array_equal(rnn.connectivity(model, xs, ys, h0=carried),
                                  rnn.connectivity(model, xs, ys, h0=detached))
    np.testing.assert_array_equal(rnn.saturation(model, xs, ys, h0=carried, tol=0.5),
                                  rnn.saturation(model, xs, ys, h0=detached, tol=0.5))
    np.testing.assert_array_equal(rnn.gradient_ratio(model, xs, ys, h0=carried),
                                  rnn.gradient_ratio(model, xs, ys, h0=detached))



def test_diagnostics_of_a_run_from_a_carried_state_leave_the_earlier_run_backpropagable():
    # gradient_ratio's sweep freed the graph behind an undetached h0: the earlier run's own
    # backward then raised GraphFreedError
    model, _, xs, ys = _elman(steps=7)
    earlier = model.run(xs[:4], ys[:4])
    expected = tg.grad(earlier.loss, model.W, retain_graph=True)
    rnn.connectivity(model, xs, ys, h0=earlier.last)
    rnn.gradient_ratio(model, xs, ys, h0=earlier.last)
    rnn.saturation(model, xs, ys, h0=earlier.last)
    rnn.jacobians(model, xs, h0=earlier.last)
    np.testing.assert_array_equal(tg.grad(earlier.loss, model.W), expected)

def test_diagnostics_of_a_run_from_a_state_whose_graph_was_freed_are_those_of_its_values():
    # the earlier run's backward freed the graph behind its last state: the diagnostics' sweeps
    # (tg.grad, grad_rows) never run it, but raised GraphFreedError ("backward: ... call
    # backward(retain_graph=True)") as a backward through it would
    model, _, xs, ys = _elman(steps=7)
    earlier = model.run(xs[:4], ys[:4])
    earlier.loss.backward()
    detached = earlier.last.data.copy()
    np.testing.assert_array_equal(rnn.connectivity(model, xs, ys, h0=earlier.last),
                                  rnn.connectivity(model, xs, ys, h0=detached))
    np.testing.assert_array_equal(rnn.gradient_ratio(model, xs, ys, h0=earlier.last),
                                  rnn.gradient_ratio(model, xs, ys, h0=detached))
    np.testing.assert_array_equal(rnn.jacobians(model, xs, h0=earlier.last),
                                  rnn.jacobians(model, xs, h0=detached))


def test_spectra_of_a_long_stack_are_each_matrix_own_norm_and_radius():
    jacs = np.random.default_rng(4).normal(size=(70, 5, 5))      # long enough to be split
    norms, radii = rnn.spectra(jacs)
    np.testing.assert_array_equal(norms, [np.linalg.norm(j, 2) for j in jacs])
    np.testing.assert_array_equal(radii, [np.abs(np.linalg.eigvals(j)).max() for j in jacs])


def test_jacobians_of_a_long_run_in_blocks_equal_the_closed_form_at_every_step():
    model = rnn.ElmanRNN(3, 40, 3, seed=2)       # 25 steps per block at H=40: four blocks
    xs = np.random.default_rng(5).integers(0, 3, 100)
    J = rnn.jacobians(model, xs)
    h = [np.zeros(40)] + [n.data.reshape(-1) for n in model.run(xs).parts["h"]]
    expected = np.array([(1 - h[t] ** 2)[:, None] * model.W.data for t in range(1, 101)])
    np.testing.assert_allclose(J, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("model, weights", [
    (rnn.ElmanRNN(4, 3, 4, layers=2, bidirectional=True, seed=0),
     {"h1": "W1", "h1_r": "W1_r", "h2": "W2", "h2_r": "W2_r"}),
    (rnn.EncoderDecoder(4, 3, 4, seed=0), {"h": "W", "s": "Wd"})], ids=["stacked", "encdec"])
def test_jacobians_of_every_chain_of_a_stacked_net_and_an_encoder_decoder(model, weights):
    """Each chain's own tanh step: diag(1 - h(t)²) W, the backward chains (h1_r, h2_r) in time
    order (the layer below, the context C: inputs held fixed)."""
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, 5), rng.integers(0, 4, 3 if "s" in weights else 5)
    run = model.run(xs, ys)
    params = dict(model.named_parameters())
    for part, W in weights.items():
        J = rnn.jacobians(model, xs, part=part, ys=ys)
        states = [h.data.reshape(-1) for h in run.parts[part]]
        assert J.shape == (len(states), 3, 3)
        for t, h in enumerate(states):
            np.testing.assert_allclose(J[t], (1 - h ** 2)[:, None] * params[W].data, rtol=1e-13,
                                       atol=1e-15)


def test_every_diagnostics_entry_point_names_itself_in_its_errors():
    # rnn.gradient_ratio of a batch of 2 said "rnn.jacobians: needs a batch of one" (it computes
    # the Jacobians by calling rnn.jacobians), and a model's own refusal of its inputs named the
    # model alone: each error now starts with the function the user called
    import viz
    model = rnn.ElmanRNN(3, 4, 2, seed=0)
    xs = np.random.default_rng(0).normal(size=(6, 2, 3))
    ys = np.zeros((6, 2), dtype=int)
    x1, y1 = xs[:, :1], ys[:, :1]
    calls = {
        "rnn.jacobians": lambda a, b, **k: rnn.jacobians(model, a, ys=b, **k),
        "rnn.gradient_ratio": lambda a, b, **k: rnn.gradient_ratio(model, a, b, **k),
        "rnn.connectivity": lambda a, b, **k: rnn.connectivity(model, a, b, **k),
        "rnn.saturation": lambda a, b, **k: rnn.saturation(model, a, b, **k),
        "viz.explore": lambda a, b, **k: viz.explore(model, a, b, **k),
    }
    for who, call in calls.items():
        with pytest.raises(tg.ShapeError, match=rf"^{who}: elman: each input vector must have "
                                                r"width n_in=3, got xs of shape \(6, 1, 5\)"):
            call(np.zeros((6, 1, 5)), y1)
        with pytest.raises(tg.ShapeError, match=rf"^{who}: elman: the inputs have 6 steps but ys "
                                                "has 5"):
            call(x1, y1[:5])
        with pytest.raises(tg.ShapeError, match=rf"^{who}: elman: h0 must have shape"):
            call(x1, y1, h0=np.zeros(7))
    for who in ("rnn.jacobians", "rnn.gradient_ratio"):
        with pytest.raises(tg.ShapeError, match=rf"^{who}: needs a batch of one; 'h' has shape "
                                                r"\(2, 4\) at t=1"):
            calls[who](xs, ys)
        with pytest.raises(tg.ConfigError, match=rf"^{who}: jordan has no state part 'h'"):
            (rnn.jacobians if who == "rnn.jacobians" else
             lambda m, a, ys: rnn.gradient_ratio(m, a, ys))(rnn.JordanRNN(3, 4, 2), x1, ys=y1)
    with pytest.raises(tg.ConfigError, match=r"^rnn\.lag_decay: takes the Jacobians"):
        rnn.lag_decay(model)


def _elman_forward(p, xs, mask):
    """numpy: h(t) for t = 0..T (masked steps carry h(t-1)) and tanh(a(t)) before masking."""
    T, B, _ = xs.shape
    hs, cands = [np.zeros((B, p["W"].shape[0]))], [None]
    for t in range(T):
        cand = np.tanh(p["b"] + hs[-1] @ p["W"].T + xs[t] @ p["U"].T)
        m = mask[t][:, None]
        hs.append(m * cand + (1 - m) * hs[-1])
        cands.append(cand)
    return hs, cands


def _numpy_connectivity(p, xs, ys, mask):
    """‖∂L(t)/∂h(k)‖ of a masked Elman run, L(t) = (1/B) sum_b mask[t, b] CE(o_b(t), y_b(t)),
    by hand: back from each L(t) alone through the masked steps."""
    import bptt_reference as ref
    T, B, _ = xs.shape
    hs, cands = _elman_forward(p, xs, mask)
    out = np.zeros((T, T))
    for t in range(1, T + 1):
        o = p["c"] + hs[t] @ p["V"].T
        g = (mask[t - 1][:, None] / B) * (ref.softmax(o) - ref.one_hot(ys[t - 1], len(p["c"]))) @ p["V"]
        out[t - 1, t - 1] = np.linalg.norm(g)
        for k in range(t - 1, 0, -1):       # g is ∂L(t)/∂h(k+1): through step k+1 to h(k)
            m = mask[k][:, None]
            g = (m * g * (1 - cands[k + 1] ** 2)) @ p["W"] + (1 - m) * g
            out[t - 1, k - 1] = np.linalg.norm(g)
    return out


def _padded_case():
    rng = np.random.default_rng(7)
    xs, ys = rng.normal(size=(6, 2, 3)), rng.integers(0, 2, (6, 2))
    mask = (np.arange(6)[:, None] < np.array([6, 3])).astype(int)
    return rnn.ElmanRNN(3, 4, 2, seed=2), xs, ys, mask


def test_the_diagnostics_of_a_masked_run_are_those_of_the_masked_loss():
    # the diagnostics took no mask: a model trained on padded batches was diagnosed on the
    # unmasked run (loss terms of the padding, its states moving on), under the same labels.
    # Now mask= is the loss's, checked against numpy by hand
    model, xs, ys, mask = _padded_case()
    p = model.state_dict()
    got = rnn.connectivity(model, xs, ys, mask=mask)
    np.testing.assert_allclose(got, _numpy_connectivity(p, xs, ys, mask), rtol=1e-10, atol=1e-14)
    assert not np.allclose(got, rnn.connectivity(model, xs, ys))      # the padding counted there
    # saturation: the units of the kept rows alone (a row of padding is computed, then dropped)
    hs, cands = _elman_forward(p, xs, mask)
    want = [np.mean((1 - cands[t][mask[t - 1] > 0] ** 2) < 0.5) for t in range(1, 7)]
    np.testing.assert_allclose(rnn.saturation(model, xs, ys, tol=0.5, mask=mask), want,
                               rtol=0, atol=1e-15)
    # the Jacobians of one padded sequence: the identity at a padded step (h(t) = h(t-1))
    x1, y1, m1 = xs[:, 1:], ys[:, 1:], mask[:, 1:]
    jacs = rnn.jacobians(model, x1, ys=y1, mask=m1)
    hs1, cands1 = _elman_forward(p, x1, m1)
    for t in range(1, 7):
        want = (np.diag(1 - cands1[t][0] ** 2) @ p["W"]) if m1[t - 1, 0] else np.eye(4)
        np.testing.assert_allclose(jacs[t - 1], want, rtol=1e-12, atol=1e-15)
    ratio = rnn.gradient_ratio(model, x1, y1, mask=m1)
    assert np.isnan(ratio[3:]).all() and np.isfinite(ratio[:3]).all()   # no loss after step 3


def test_the_diagnostics_of_a_free_running_jordan_network_are_those_of_its_loss():
    # a JordanRNN trained with teacher_forcing=False was diagnosed teacher-forced: its h(k)
    # reaches L(t) for t > k only through o(k) fed back, which the teacher-forced run cuts
    import bptt_reference as ref
    rng = np.random.default_rng(8)
    xs, ys = rng.normal(size=(5, 2, 3)), rng.integers(0, 2, (5, 2))
    model = rnn.JordanRNN(3, 4, 2, seed=1)
    p = model.state_dict()
    got = rnn.connectivity(model, xs, ys, teacher_forcing=False)
    # numpy: h(t) = tanh(b + W softmax(o(t-1)) + U x(t)), o(t) = c + V h(t)
    B, T = 2, 5
    f, hs, probs = np.zeros((B, 2)), [], []
    for t in range(T):
        hs.append(np.tanh(p["b"] + f @ p["W"].T + xs[t] @ p["U"].T))
        probs.append(ref.softmax(p["c"] + hs[-1] @ p["V"].T))
        f = probs[-1]
    want = np.zeros((T, T))
    for t in range(T):
        g_o = (probs[t] - ref.one_hot(ys[t], 2)) / B
        for k in range(t, -1, -1):
            g_h = g_o @ p["V"]                       # ∂L(t)/∂h(k)
            want[t, k] = np.linalg.norm(g_h)
            g_a = g_h * (1 - hs[k] ** 2)             # back into o(k-1) through f(k-1) = softmax
            g_f = g_a @ p["W"]
            if k:
                q = probs[k - 1]
                g_o = q * (g_f - (g_f * q).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    assert np.count_nonzero(np.tril(got, -1)) == 10 and not np.tril(rnn.connectivity(model, xs, ys), -1).any()
    with pytest.raises(tg.ConfigError, match=r"^rnn\.jacobians: a run that feeds jordan's own "
                                             "output back"):
        rnn.jacobians(model, xs[:, :1], ys=ys[:, :1], teacher_forcing=False)
    with pytest.raises(tg.ConfigError, match=r"^rnn\.connectivity: ElmanRNN\.run takes no "
                                             r"teacher_forcing="):
        rnn.connectivity(rnn.ElmanRNN(3, 4, 2), xs, ys, teacher_forcing=False)


def test_the_diagnostics_of_a_masked_encoder_decoder_are_those_of_its_loss():
    # a mask of an EncoderDecoder pads its source (the encoder's steps); every decoder step and
    # row has its loss term.  rnn.jacobians, rnn.saturation and rnn.gradient_ratio refused it
    # ("a mask of encdec, a model of several chains..."): they now diagnose the run the loss
    # computes, checked against numpy (a hole at step 2 of the sequence diagnosed alone)
    model = rnn.EncoderDecoder(4, 3, 4, seed=2)
    P = {k: v.data for k, v in model.named_parameters()}
    rng = np.random.default_rng(5)
    xs, ys = rng.integers(0, 4, (6, 2)), rng.integers(0, 4, (4, 2))
    mask = np.array([[1, 1], [1, 0], [1, 1], [1, 0], [1, 0], [1, 0]])

    def forward(xs, ys, mask):
        """numpy: the encoder's tanh(a(t)) (before masking) and the decoder's s(t), (T, B, H)."""
        B = xs.shape[1]
        h, cands = np.zeros((B, 3)), []
        for t in range(len(xs)):
            cands.append(np.tanh(P["b"] + h @ P["W"].T + P["U"][:, xs[t]].T))
            h = np.where(mask[t][:, None] > 0, cands[-1], h)
        s, prev, states = h, np.full(B, 4), []
        for t in range(len(ys)):
            s = np.tanh(P["bd"] + s @ P["Wd"].T + P["Ud"][:, prev].T + h @ P["R"].T)
            states.append(s)
            prev = ys[t]
        return cands, states
    cands, states = forward(xs, ys, mask)
    want = []
    for t in range(6):          # step t: the encoder's kept rows and every decoder row
        units = [cands[t][mask[t] > 0]] + ([states[t]] if t < 4 else [])
        want.append(np.mean(np.concatenate([(1 - u ** 2).ravel() < 0.5 for u in units])))
    np.testing.assert_allclose(rnn.saturation(model, xs, ys, tol=0.5, mask=mask), want,
                               rtol=1e-12)
    x1, y1, m1 = xs[:, 1:], ys[:, 1:], mask[:, 1:]
    cands1, states1 = forward(x1, y1, m1)
    jh = rnn.jacobians(model, x1, ys=y1, mask=m1)
    for t in range(6):          # a padded step carries h: the identity
        expected = (1 - cands1[t][0] ** 2)[:, None] * P["W"] if m1[t, 0] else np.eye(3)
        np.testing.assert_allclose(jh[t], expected, rtol=1e-12, atol=1e-15)
    js = rnn.jacobians(model, x1, part="s", ys=y1, mask=m1)
    assert js.shape == (4, 3, 3)
    for t in range(4):          # the decoder's steps: none padded
        np.testing.assert_allclose(js[t], (1 - states1[t][0] ** 2)[:, None] * P["Wd"],
                                   rtol=1e-12, atol=1e-15)
    ratio = rnn.gradient_ratio(model, x1, y1, mask=m1)
    np.testing.assert_allclose(ratio[~m1[:, 0].astype(bool)], 1.0, rtol=1e-12)
    assert np.all((ratio[m1[:, 0] > 0] > 0) & (ratio[m1[:, 0] > 0] < 1))


def test_the_jacobians_of_a_masked_bidirectional_net_carry_both_chains_over_the_padding():
    # refused as "a mask of bidirectional, a model of several chains": the mask pads the steps
    # of both chains, each carrying its state over a padded step (the identity there)
    model = rnn.BidirectionalRNN(3, 4, 2, seed=1)
    P = {k: v.data for k, v in model.named_parameters()}
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(5, 1, 3)), rng.integers(0, 2, (5, 1))
    mask = np.array([[1], [1], [1], [0], [0]])
    for part, W, U, b in (("h", "W", "U", "b"), ("g", "Wg", "Ug", "bg")):
        J = rnn.jacobians(model, xs, part=part, ys=ys, mask=mask)
        state, cands = np.zeros(4), {}
        for t in (range(5) if part == "h" else range(4, -1, -1)):
            cands[t] = np.tanh(P[b] + P[W] @ state + P[U] @ xs[t, 0])
            state = cands[t] if mask[t, 0] else state
        for t in range(5):
            want = (1 - cands[t] ** 2)[:, None] * P[W] if mask[t, 0] else np.eye(4)
            np.testing.assert_allclose(J[t], want, rtol=1e-12, atol=1e-15)


def test_a_systems_first_step_from_a_learned_initial_state_counts_its_units():
    """A tanh computed from Parameters alone is no unit (a LeakyRNN's leak σ(alpha_logit)),
    but a Parameter given as h0 (a learned initial state) is no weight of the model: step 1's
    units s(1) = tanh(W s(0)) of a system without input were dropped, and its fraction shown
    as 0.0 (0 of 0 units) where 2 of its 3 units are saturated (numpy)."""
    W = tg.Parameter(np.array([[3.0, 0.0, 0.0], [0.0, -4.0, 0.0], [0.0, 0.0, 0.1]]), name="W")
    model = rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=3, name="system",
                           state_name="s")
    s0 = np.array([1.0, 1.0, 1.0])
    s, want = s0, []
    for _ in range(3):
        s = np.tanh(W.data @ s)
        want.append(np.count_nonzero(1 - s * s < 0.05) / 3)
    assert want[0] == 2 / 3
    for h0 in (s0, tg.Parameter(s0.copy()), tg.tensor(s0, requires_grad=True)):
        np.testing.assert_array_equal(rnn.saturation(model, None, h0=h0, steps=3), want)


@pytest.mark.parametrize("frozen", [False, True])
def test_saturation_leaves_out_a_frozen_leak_as_a_learned_one(frozen):
    # alpha_logit with requires_grad=False is out of parameters(): sigma(alpha_logit), the same
    # number at every step, counted as units ([0.083, 0.417, 0.25, 0.083] for [0, 0.5, 0.25, 0])
    import explorer_numpy_oracle as O
    r = np.random.default_rng(0)
    model = rnn.LeakyRNN(3, 4, 2, alpha="learned", seed=0)
    xs, ys = r.normal(size=(4, 2, 3)), r.integers(0, 2, (4, 2))
    model.alpha_logit.requires_grad = not frozen
    P = {name: p.data.astype(complex) for name, p in model._named_state()}
    tape = O.Tape({})
    O.leaky(P, xs, ys, B=2)(tape)
    np.testing.assert_allclose(rnn.saturation(model, xs, ys, tol=0.5),
                               O.saturation(tape, tol=0.5))
