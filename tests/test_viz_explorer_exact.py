"""Every number viz.explore shows, for every design, to the last of its six digits: the page's
loss, L(t), states, norms, ‖∂L/∂v(t)‖, connectivity, Jacobian spectra, eq. 10.52 ratio, lag decay
and saturation against tests/explorer_numpy_oracle.py, a numpy forward pass of each design
differentiated by the complex step (exact to ~1e-15, independent of the engine).  Each shown
number must be the oracle's rounded to six digits (within 1e-10 of it, up to that rounding)."""

import numpy as np
import pytest

import explorer_numpy_oracle as O
import rnn
import tinygraph as tg
import viz

T = 7


def _params(model, scale=2.0):
    """The model's parameters, scaled so that some units saturate, as float64 arrays."""
    for p in model.parameters():
        p.data *= scale
    return {n: p.data.astype(np.float64).copy() for n, p in model.named_parameters()}


def _ok(bad):
    assert not bad, "\n".join(bad)


def _ids(seed, *shape):
    return np.random.default_rng(seed).integers(0, 4, shape)


CHAINS = {       # design -> (model, the oracle's forward of (P, xs, ys), its parts and chains)
    "elman": (lambda: rnn.ElmanRNN(4, 3, 4, seed=1), O.elman, {"h": False}),
    "gru": (lambda: rnn.GRU(4, 3, 4, seed=1), O.gru, {"h": False}),
    "lstm": (lambda: rnn.LSTM(4, 3, 4, seed=1), O.lstm, {"h": False, "s": False}),
    "conditional": (lambda: rnn.ConditionalRNN(4, 3, 4, seed=1), O.conditional, {"h": False}),
    "bidirectional": (lambda: rnn.BidirectionalRNN(4, 3, 4, seed=1), O.bidirectional,
                      {"h": False, "g": True}),
    "deep_stacked": (lambda: rnn.DeepRNN(4, 3, 4, kind="stacked", seed=1), O.stacked,
                     {"h1": False, "h2": False}),
    "deep_mlp": (lambda: rnn.DeepRNN(4, 3, 4, kind="mlp", seed=1), O.deep_mlp, {"h": False}),
    "deep_skip": (lambda: rnn.DeepRNN(4, 3, 4, kind="skip", seed=1),
                  lambda P, xs, ys: O.deep_mlp(P, xs, ys, skip=True), {"h": False}),
}


def _sites(parts, steps, start=1):
    """Every state of every part: 1..T, and what each chain starts from (h(0), or g(T+1) of a
    chain backward in time) from ``start`` 0."""
    return {p: range(start if not back else 1, steps + 1 + (start == 0 and back))
            for p, back in parts.items()}


@pytest.mark.parametrize("design", sorted(CHAINS))
def test_every_number_of_every_chain_of_a_design(design):
    make, forward, parts = CHAINS[design]
    model = make()
    P = _params(model)
    xs, ys = _ids(1, T), _ids(2, T)
    o = O.oracle(forward(P, xs, ys), _sites(parts, T, 0), T)
    for part, back in parts.items():
        bundle = viz.explore(model, xs, ys, part=part).data["bundles"][-1]
        _ok(O.check_bundle(bundle, o, _sites(parts, T), part, T, backward=back))


@pytest.mark.parametrize("skip", [None, 1, 2])
def test_a_leaky_rnn_with_a_learned_leak_and_a_skip_connection(skip):
    """LeakyRNN(alpha="learned"): its saturation counted the leak α = σ(alpha_logit), made
    inside every step from the parameters alone, as H more units of each step (0.166667 shown
    at t = 4 where 1 of the 3 units of v is saturated: 0.333333).  The Jacobians hold
    h(t-d) of a skip of d >= 2 fixed; a skip of 1 reads h(t-1) itself."""
    model = rnn.LeakyRNN(4, 3, 4, alpha="learned", skip=skip, seed=1)
    for p in model.parameters():
        if p.name != "alpha_logit":
            p.data *= 5.0
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    xs, ys = _ids(1, T), _ids(2, T)
    o = O.oracle(O.leaky(P, xs, ys, skip=skip), {"h": range(1, T + 1)}, T)
    bundle = viz.explore(model, xs, ys).data["bundles"][-1]
    assert max(O.saturation(o["base"])) > 0, "the check needs some saturated units"
    _ok(O.check_bundle(bundle, o, {"h": range(1, T + 1)}, "h", T))
    np.testing.assert_array_equal(rnn.saturation(model, xs, ys), O.saturation(o["base"]))


def test_a_sequence_padded_at_its_end_is_the_page_of_the_sequence_alone():
    """One sequence of 4 steps padded to 6 (mask 1 1 1 1 0 0): the page showed 4 steps (the
    graph of the loss) while its spectra held 6 Jacobians, the padded steps' identities, and
    the lag decay was taken over them (rate 0.72 where the 4 steps give 0.59), the saturation
    and the connectivity 6 steps wide.  Every panel now ends at step 4, each number that of
    the unpadded sequence, and a note names the padded steps."""
    for model, forward, parts in ((rnn.ElmanRNN(4, 3, 4, seed=1), O.elman, {"h": False}),
                                  (rnn.LSTM(4, 3, 4, seed=1), O.lstm, {"h": False, "s": False})):
        P = _params(model)
        xs, ys = _ids(1, 6, 1), _ids(2, 6, 1)
        mask = np.array([[1], [1], [1], [1], [0], [0]])
        o = O.oracle(forward(P, xs[:4], ys[:4]), _sites(parts, 4, 0), 4)
        for part in parts:
            bundle = viz.explore(model, xs, ys, mask=mask, part=part).data["bundles"][-1]
            assert bundle["steps"] == 4
            _ok(O.check_bundle(bundle, o, _sites(parts, 4), part, 4))
            assert [len(bundle["diag"]["spectra"]["norm"]), len(bundle["diag"]["saturation"]),
                    bundle["diag"]["connectivity"][part]["width"]] == [4, 4, 4]
            assert any(n.startswith("steps 5–6 of the run are padded in every row")
                       for n in bundle["diag"]["notes"]), bundle["diag"]["notes"]

def test_an_echo_state_networks_gradients_through_its_fixed_reservoir():
    """The reservoir's U, W, b are fixed, so its states needed no gradient and the page showed
    no ∂L/∂h(t), no connectivity and an eq. 10.52 ratio without a point (its legend over an
    empty plot).  The page now runs it from h(0) = 0 requiring grad (the same run; a note
    says so): every number is the oracle's."""
    model = rnn.EchoStateNetwork(3, 4, 2, spectral_radius=1.2, seed=1)
    P = {"U": model.U.data, "W": model.W.data, "b": model.b.data, "V": model.V.data,
         "c": model.c.data}
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(T, 3)), rng.normal(size=(T, 2))
    o = O.oracle(O.echo_state(P, xs, ys), {"h": range(0, T + 1)}, T)
    bundle = viz.explore(model, xs, ys).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, {"h": range(0, T + 1)}, "h", T))
    assert any("runs it from h(0) = 0 requiring grad" in n for n in bundle["diag"]["notes"])


@pytest.mark.parametrize("make, args", [
    (lambda: rnn.VectorToSequence(3, 4, 5, seed=0, h0_from_x=True),
     (np.array([0.3, -0.2, 0.5]), np.array([1, 2, 3, 4]))),
    (lambda: rnn.EncoderDecoder(4, 3, 4, seed=0), (_ids(1, 5), _ids(2, 4))),
    (lambda: rnn.JordanRNN(4, 3, 4, seed=0), (_ids(1, 5), _ids(2, 5)))])
def test_a_model_whose_every_parameter_is_fixed_and_whose_h0_the_page_cannot_give_is_refused(
        make, args):
    """Every parameter fixed, of a model whose run makes its own h(0) (h0_from_x), takes no h0
    (an encoder-decoder) or carries no state parts (a Jordan net): the page's rerun from an
    h(0) = 0 requiring grad (made for the echo state network's reservoir) raised 'h(0) is
    computed from x ...; do not pass h0 as well' and 'EncoderDecoder.run takes no h0=; leave
    h0 out' of an h0 the caller never gave, or a bare BackwardError 'this tensor does not
    require grad'.  Now a ConfigError says why the page has no gradient to show."""
    model = make()
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(tg.ConfigError, match=r"viz\.explore: .*loss needs no gradient \(every "
                                             r"parameter it is computed from is fixed.*make a "
                                             r"parameter require grad$"):
        viz.explore(model, *args)


def test_a_fixed_model_explored_from_an_h0_that_needs_no_gradient_is_refused_naming_the_h0():
    model = rnn.ElmanRNN(4, 3, 4, seed=0)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(tg.ConfigError, match=r"and so is the h0 given.*requires grad$"):
        viz.explore(model, _ids(1, 4), _ids(2, 4), h0=np.zeros(3))
    page = viz.explore(model, _ids(1, 4), _ids(2, 4),
                       h0=tg.tensor(np.zeros(3), requires_grad=True))     # what it says to do
    assert page.data["bundles"][-1]["diag"]


def test_the_explorer_called_under_no_grad_says_so():
    """Under tg.no_grad() the run needs no gradient: it raised a bare BackwardError ('this
    tensor does not require grad'), and the page would have blamed fixed parameters."""
    model = rnn.ElmanRNN(4, 3, 4, seed=0)
    with tg.no_grad(), pytest.raises(tg.ConfigError, match=r"called under tg\.no_grad\(\)"):
        viz.explore(model, _ids(1, 4), _ids(2, 4))


def test_a_bidirectional_elman_rnns_backward_chain_h_r():
    """rnn.ElmanRNN(bidirectional=True): its h_r is figure 10.11's g under another name."""
    model = rnn.ElmanRNN(4, 3, 4, seed=1, bidirectional=True)
    P = _params(model)
    Q = {"U": P["U"], "W": P["W"], "b": P["b"], "Ug": P["U_r"], "Wg": P["W_r"], "bg": P["b_r"],
         "V": P["V"], "c": P["c"]}
    xs, ys = _ids(1, T), _ids(2, T)
    forward = O.bidirectional(Q, xs, ys)

    def renamed(tape):        # the oracle's g is the model's h_r
        inner = O.Tape({(("read", "g", k[2]) if k[0] == "read" else ("g", k[1])) if "h_r" in k
                        else k: v for k, v in tape.pert.items()})
        forward(inner)
        tape.losses, tape.units = inner.losses, inner.units
        tape.states = {(("h_r", k) if p == "g" else (p, k)): v for (p, k), v in inner.states.items()}
    o = O.oracle(renamed, {"h": range(1, T + 1), "h_r": range(1, T + 1)}, T)
    for part in ("h", "h_r"):
        bundle = viz.explore(model, xs, ys, part=part).data["bundles"][-1]
        assert bundle["diag"]["backward"] == (part == "h_r")
        _ok(O.check_bundle(bundle, o, {"h": range(1, T + 1), "h_r": range(1, T + 1)}, part, T,
                           backward=part == "h_r"))


@pytest.mark.parametrize("attention", [None, "dot", "additive"])
@pytest.mark.parametrize("n_x, n_y", [(5, 3), (3, 6)])
def test_every_number_of_an_encoder_decoder_either_chain(attention, n_x, n_y):
    """Both chains (the encoder's h over n_x steps, the decoder's s over n_y), with and without
    attention: the heatmaps n_y x n_x and n_y x n_y, each chain's own Jacobians (the decoder's
    holding the encoder's states fixed), each chain's saturation, and the alignment α(t, k)."""
    model = rnn.EncoderDecoder(4, 3, 4, seed=1, attention=attention)
    P = _params(model)
    xs, ys = _ids(n_x, n_x), _ids(n_y + 10, n_y)
    sites = {"h": range(1, n_x + 1), "s": range(1, n_y + 1)}
    o = O.oracle(O.encoder_decoder(P, xs, ys, 4, attention=attention), sites, max(n_x, n_y))
    for part, steps in (("h", n_x), ("s", n_y)):
        bundle = viz.explore(model, xs, ys, part=part).data["bundles"][-1]
        _ok(O.check_bundle(bundle, o, sites, part, steps))
        if attention is not None:
            O.shown_is(bundle["alignment"]["cells"],
                       [o["base"].values[("α", t)].real[0] for t in range(1, n_y + 1)], "α(t, k)")
        else:
            assert bundle["alignment"] is None


def test_vector_to_sequence_sequence_to_one_and_jordan_running_either_way():
    model = rnn.VectorToSequence(4, 3, 4, seed=1)
    P = _params(model)
    x, ys = np.random.default_rng(3).normal(size=4), _ids(2, T)
    o = O.oracle(O.vector_to_sequence(P, x, ys), {"h": range(1, T + 1)}, T)
    _ok(O.check_bundle(viz.explore(model, x, ys).data["bundles"][-1], o, {"h": range(1, T + 1)},
                       "h", T))
    model = rnn.SequenceToOne(4, 3, 4, seed=1)
    P = _params(model)
    xs = _ids(1, T)
    o = O.oracle(O.elman(P, xs, [2], last_only=True), {"h": range(1, T + 1)}, T)
    bundle = viz.explore(model, xs, 2).data["bundles"][-1]
    assert bundle["loss_terms"] == [1, T, T]
    _ok(O.check_bundle(bundle, o, {"h": range(1, T + 1)}, "h", T))
    model = rnn.JordanRNN(4, 3, 4, seed=1)          # no state part: no Jacobians, h(t) a variable
    P = _params(model)
    for free in (False, True):
        o = O.oracle(O.jordan(P, xs, ys, free=free), {"h": range(1, T + 1)}, T)
        options = {"teacher_forcing": False} if free else {}
        bundle = viz.explore(model, xs, ys, **options).data["bundles"][-1]
        assert bundle["diag"]["spectra"] is None and bundle["diag"]["ratio"] is None
        _ok(O.check_bundle(bundle, o, {"h": range(1, T + 1)}))


def test_a_masked_batch_from_a_given_h0_numbers_or_a_leaf_that_requires_grad():
    """A batch of 3 padded to 6, 4 and 2 steps from h(0) given: the masked loss terms, the
    blended states, ∂L/∂h(t) over the batch, the connectivity and the kept rows' saturation.
    h(0) given as a leaf tensor that requires grad was left off the page (no h(0), no
    ∂L/∂h(0)) where numbers or a named tensor showed it: it is now h(0) with its gradient."""
    model = rnn.ElmanRNN(4, 3, 4, seed=1)
    P = _params(model)
    B, steps = 3, 6
    xs, ys = _ids(1, steps, B), _ids(2, steps, B)
    mask = (np.arange(steps)[:, None] < np.array([6, 4, 2])).astype(int)
    h0 = np.random.default_rng(4).normal(size=(B, 3))
    o = O.oracle(O.elman(P, xs, ys, B=B, mask=mask, h0=h0), {"h": range(0, steps + 1)}, steps)
    bundle = viz.explore(model, xs, ys, h0=h0, mask=mask).data["bundles"][-1]
    assert bundle["diag"]["spectra"] is None       # a batch: no Jacobians, and a note says so
    assert any("a batch of 3" in n for n in bundle["diag"]["notes"])
    _ok(O.check_bundle(bundle, o, {"h": range(1, steps + 1)}, keep=mask))
    leaf = tg.tensor(h0, requires_grad=True)
    bundle = viz.explore(model, xs, ys, h0=leaf, mask=mask).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, {"h": range(0, steps + 1)}, keep=mask))
    assert leaf.name is None and leaf.grad is None         # the user's tensor as it was


def test_an_lstm_batch_masked_from_h0_and_s0_and_a_masked_sequence_with_jacobians():
    model = rnn.LSTM(4, 3, 4, seed=1)
    P = _params(model)
    B, steps = 3, 6
    xs, ys = _ids(1, steps, B), _ids(2, steps, B)
    mask = (np.arange(steps)[:, None] < np.array([6, 4, 5])).astype(int)
    rng = np.random.default_rng(5)
    h0, s0 = rng.normal(size=(B, 3)), rng.normal(size=(B, 3))
    o = O.oracle(O.lstm(P, xs, ys, B=B, mask=mask, h0=h0, s0=s0),
                 {"h": range(0, steps + 1), "s": range(0, steps + 1)}, steps)
    given = {"h": tg.tensor(h0, requires_grad=True), "s": tg.tensor(s0, requires_grad=True)}
    bundle = viz.explore(model, xs, ys, h0=given, mask=mask).data["bundles"][-1]
    # s(6) of rows padded at step 6 is a blend that no loss term reads: no variable of the page
    _ok(O.check_bundle(bundle, o, {"h": range(0, steps + 1), "s": range(0, steps)}, keep=mask))
    # one sequence with a hole at step 3: that step's Jacobians are the identity
    mask1 = np.array([[1], [1], [0], [1], [1], [1]])
    o = O.oracle(O.lstm(P, xs[:, :1], ys[:, :1], mask=mask1),
                 {"h": range(0, steps + 1), "s": range(0, steps + 1)}, steps)
    for part in ("h", "s"):
        bundle = viz.explore(model, xs[:, :1], ys[:, :1], mask=mask1, part=part).data["bundles"][-1]
        _ok(O.check_bundle(bundle, o, {"h": range(1, steps + 1), "s": range(1, steps + 1)}, part,
                           steps, keep=mask1))
    # step 3 keeps no row: no unit counts, and 0 of 0 is no fraction (it was shown as 0.0)
    assert bundle["diag"]["saturation"][2] is None
    assert any(n.startswith("the saturation counts the kept rows' units (no fraction at a step")
               for n in bundle["diag"]["notes"])
    fractions = rnn.saturation(model, xs[:, :1], ys[:, :1], mask=mask1)
    assert np.isnan(fractions[2]) and not np.isnan(fractions[[0, 1, 3, 4, 5]]).any()


def test_the_state_a_backward_chain_starts_from_is_g_of_t_plus_1_on_the_page():
    """The bidirectional net's g runs backward from g(T+1) (rnn.BidirectionalRNN.run: h0 =
    {"h": h(0), "g": g(T+1)}), which the run makes before the steps, as h(0).  The page showed
    it as g(0): its value, norm and ∂L/∂g(T+1) (0.0813892 here) under the key "0", and step T's
    op-level DAG named it "g (t-5)" (g(0) at t = 5) where every other step reads "g (t+1)".
    It is g(T+1) (key T + 1), and every step's op DAG reads "g (t+1)"."""
    import html
    import re
    model = rnn.BidirectionalRNN(4, 3, 4, seed=1)
    P = _params(model)
    steps = 5
    xs, ys = _ids(1, steps), _ids(2, steps)
    rng = np.random.default_rng(0)
    h0, g0 = rng.normal(size=3), rng.normal(size=3)
    o = O.oracle(O.bidirectional(P, xs, ys, h0=h0, g0=g0),
                 {"h": range(0, steps + 1), "g": range(1, steps + 2)}, steps)
    start = {"h": tg.tensor(h0, requires_grad=True), "g": tg.tensor(g0, requires_grad=True)}
    page = viz.explore(model, xs, ys, h0=start, part="g")
    bundle = page.data["bundles"][-1]
    assert "0" not in bundle["vars"]["g"]["norm"]
    _ok(O.check_bundle(bundle, o, {"h": range(0, steps + 1), "g": range(1, steps + 2)}, "g",
                       steps, backward=True))
    for t in range(1, steps + 1):
        svg = page.data["templates"][bundle["ops"][str(t)]["template"]]
        inputs = {html.unescape(x) for x in
                  re.findall(r'fill="#dbe9f6".*?<text[^>]*>([^<]*)</text>', svg, flags=re.S)}
        assert "g (t+1)" in inputs and not any(n.startswith("g (t-") for n in inputs), (t, inputs)
    names = bundle["names"]
    assert [names[i] for i, t, _ in bundle["sweep"] if t in (0, steps + 1)] in (
        ["g", "h"], ["h", "g"])                      # the sweep reaches g(T+1) and h(0)
    assert all(t != 0 for i, t, _ in bundle["sweep"] if names[i] == "g")
    # without a given g(T+1): the zeros the run starts from, still g(T+1)
    bundle = viz.explore(model, xs, ys).data["bundles"][-1]
    assert sorted(bundle["vars"]["g"]["norm"], key=int) == [str(t) for t in range(1, steps + 2)]
    assert bundle["vars"]["g"]["value"][str(steps + 1)] == [0.0, 0.0, 0.0]


def test_the_unrounded_diagnostics_are_the_oracles_to_1e_10():
    """rnn.connectivity, rnn.jacobians, rnn.gradient_ratio and rnn.saturation (what the page
    rounds), in float64, against the complex-step oracle: relative 1e-10."""
    for make, forward, parts in (CHAINS["lstm"], CHAINS["bidirectional"]):
        model = make()
        P = _params(model)
        xs, ys = _ids(1, T), _ids(2, T)
        o = O.oracle(forward(P, xs, ys), _sites(parts, T, 0), T)
        for part, back in parts.items():
            np.testing.assert_allclose(rnn.connectivity(model, xs, ys, part=part),
                                       o["conn"][part], rtol=1e-10, atol=1e-14)
            J = O.jacobians(o["forward"], part, T, back)
            np.testing.assert_allclose(rnn.jacobians(model, xs, part=part), J, rtol=1e-10,
                                       atol=1e-14)
            grads = [o["grad"][(part, k)].reshape(-1) for k in range(1, T + 1)]
            np.testing.assert_allclose(rnn.gradient_ratio(model, xs, ys, part=part),
                                       [np.linalg.norm(g @ j) / np.linalg.norm(g)
                                        for g, j in zip(grads, J)], rtol=1e-10)
        np.testing.assert_allclose(rnn.saturation(model, xs, ys),
                                   O.saturation(o["base"]), rtol=0, atol=0)


def _user_lstm_forward(P, xs, ys, peephole=False):
    """tests/viz_layout's user LSTM (rnn.Recurrence, no biases, float inputs) and its peephole
    variant (f, g read c * P(t-1), q reads s(t) * Pq), as the oracle's forward."""
    def forward(tape):
        s = tape.state("s", 0, np.zeros((1, 3), complex))
        h = tape.state("h", 0, np.zeros((1, 3), complex))
        for t in range(1, len(xs) + 1):
            x = xs[t - 1][None]
            s, h = tape.read("s", t - 1, s), tape.read("h", t - 1, h)
            f = tape.unit("", t, "sigmoid", O.sigmoid(x @ P["Uf"].T + h @ P["Wf"].T
                                                      + (s * P["Pf"] if peephole else 0)))
            g = tape.unit("", t, "sigmoid", O.sigmoid(x @ P["Ug"].T + h @ P["Wg"].T
                                                      + (s * P["Pg"] if peephole else 0)))
            if not peephole:
                q = tape.unit("", t, "sigmoid", O.sigmoid(x @ P["Uq"].T + h @ P["Wq"].T))
            z = tape.unit("", t, "tanh", np.tanh(x @ P["U"].T + h @ P["W"].T))
            s = tape.state("s", t, f * s + g * z)
            if peephole:
                q = tape.unit("", t, "sigmoid", O.sigmoid(x @ P["Uq"].T + h @ P["Wq"].T
                                                          + s * P["Pq"]))
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(s)) * q)
            tape.loss(t, O.cross_entropy(h @ P["V"].T, ys[t - 1:t]).mean())
    return forward


@pytest.mark.parametrize("peephole", [False, True])
def test_a_users_cells_every_number(peephole):
    from viz_layout import _peephole, _user_lstm
    model = _peephole() if peephole else _user_lstm()
    for p in model.parameters():
        p.data *= 4.0
    P = {p.name: p.data.copy() for p in model.parameters()}
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(T, 2)), rng.integers(0, 4, T)
    sites = {"h": range(1, T + 1), "s": range(1, T + 1)}
    o = O.oracle(_user_lstm_forward(P, xs, ys, peephole), sites, T)
    assert max(O.saturation(o["base"])) > 0
    for part in ("s", "h"):
        _ok(O.check_bundle(viz.explore(model, xs, ys, part=part).data["bundles"][-1], o, sites,
                           part, T))


def test_the_readmes_attention_decoder_over_another_models_states():
    """A user's Recurrence attending over an ElmanRNN's states (static inputs of its run): its
    own chain's numbers, the encoder's states held fixed in its Jacobians."""
    from viz_layout import readme_attention_decoder
    model = readme_attention_decoder()
    encoder = {n: p.data for n, p in rnn.ElmanRNN(3, 4, 3, seed=0).named_parameters()}
    memory = [np.zeros(4)]
    for x in (0, 1, 2, 1):
        memory.append(np.tanh(encoder["b"] + encoder["W"] @ memory[-1] + encoder["U"][:, x]))
    memory = np.array(memory[1:])
    P = {p.name: p.data for p in model.parameters()}
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(T, 4)), rng.integers(0, 3, T)

    def forward(tape):
        s = tape.state("h", 0, np.zeros((1, 4), complex))
        for t in range(1, T + 1):
            s = tape.read("h", t - 1, s)
            alpha = tape.value("α", t, O.softmax(s @ memory.T))
            s = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(
                s @ P["Wd"].T + (alpha @ memory) @ P["R"].T + xs[t - 1][None])))
            tape.loss(t, O.cross_entropy(s @ P["V"].T, ys[t - 1:t]).mean())
    o = O.oracle(forward, {"h": range(1, T + 1)}, T)
    bundle = viz.explore(model, xs, ys).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, {"h": range(1, T + 1)}, "h", T))
    for t in range(1, T + 1):
        O.shown_is(bundle["vars"]["α"]["value"][str(t)], o["base"].values[("α", t)].real[0],
                   f"α({t})")


def _memory_forward(P, xs, ys, slots, width, eps):
    """rnn.MemoryNetwork's step: h = tanh(b + U x + W h(t-1) + R r(t-1)); write weights
    ww = softmax_i(k . M_i / ||M_i||) with k = Kw h, erase σ(E h), add tanh(A h);
    M(t) = M (1 - ww erase) + ww add; read weights wr from M(t) with Kr h; r = sum_i wr_i M_i;
    o = c + V [h; r]; M(0) = M0."""
    def address(cells, key):
        norms = ((cells * cells).sum(axis=-1) + eps) ** 0.5
        return O.softmax((cells * key[:, None, :]).sum(axis=-1) / norms)

    def forward(tape):
        H = len(P["b"])
        h = tape.state("h", 0, np.zeros((1, H), complex))
        M = tape.state("M", 0, P["M0"].reshape(1, -1).astype(complex))
        r = tape.state("r", 0, np.zeros((1, width), complex))
        for t in range(1, len(xs) + 1):
            h, M, r = (tape.read(p, t - 1, v) for p, v in (("h", h), ("M", M), ("r", r)))
            h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(
                P["b"] + O._drive(P["U"], xs[t - 1:t]) + h @ P["W"].T + r @ P["R"].T)))
            cells = M.reshape(1, slots, width)
            ww = address(cells, h @ P["Kw"].T)[:, :, None]
            erase = tape.unit("", t, "sigmoid", O.sigmoid(h @ P["E"].T))[:, None, :]
            add = tape.unit("", t, "tanh", np.tanh(h @ P["A"].T))[:, None, :]
            cells = cells * (1 - ww * erase) + ww * add
            M = tape.state("M", t, cells.reshape(1, -1))
            cells = M.reshape(1, slots, width)
            wr = address(cells, h @ P["Kr"].T)[:, :, None]
            r = tape.state("r", t, (wr * cells).sum(axis=1))
            o = P["c"] + np.concatenate([h, r], axis=-1) @ P["V"].T
            tape.loss(t, O.cross_entropy(o, ys[t - 1:t]).mean())
    return forward


@pytest.mark.parametrize("part", ["h", "M", "r"])
def test_a_memory_networks_every_number_of_each_state_part(part):
    from rnn.memory import EPS
    model = rnn.MemoryNetwork(4, 3, 4, slots=3, width=2, seed=1)
    P = _params(model)
    xs, ys = _ids(1, T), _ids(2, T)
    sites = {"h": range(1, T + 1), "M": range(1, T + 1), "r": range(1, T + 1)}
    o = O.oracle(_memory_forward(P, xs, ys, 3, 2, EPS), sites, T)
    bundle = viz.explore(model, xs, ys, part=part).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, sites, part, T))


@pytest.mark.parametrize("free", [False, True])
def test_designs_fed_their_output_or_the_target_with_the_squared_error_and_y0(free):
    """ConditionalRNN from y0 and VectorToSequence, teacher-forced or fed o(t-1) (feedback=
    "output": no Jacobians, which hold the fed-back input fixed)."""
    rng = np.random.default_rng(0)
    xs, ys, y0, x = (rng.normal(size=(T, 3)), rng.normal(size=(T, 2)), rng.normal(size=2),
                     rng.normal(size=3))

    def chain(P, drive, weight, f0):
        def forward(tape):
            h = tape.state("h", 0, np.zeros((1, 3), complex))
            f = np.asarray(f0, float).reshape(1, -1).astype(complex)
            for t in range(1, T + 1):
                h = tape.state("h", t, tape.unit("", t, "tanh", np.tanh(
                    P["b"] + tape.read("h", t - 1, h) @ P["W"].T + drive(t) + f @ P[weight].T)))
                o = P["c"] + h @ P["V"].T
                tape.loss(t, ((o - ys[t - 1][None]) ** 2).sum())
                f = o if free else ys[t - 1][None].astype(complex)
        return forward
    options = {"feedback": "output"} if free else {}
    model = rnn.ConditionalRNN(3, 3, 2, seed=1, criterion="squared_error")
    P = _params(model)
    o = O.oracle(chain(P, lambda t: xs[t - 1][None] @ P["U"].T, "R", y0), {"h": range(1, T + 1)}, T)
    bundle = viz.explore(model, xs, ys, y0=y0, **options).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, {"h": range(1, T + 1)}, None if free else "h", T))
    model = rnn.VectorToSequence(3, 3, 2, seed=1, criterion="squared_error")
    P = _params(model)
    o = O.oracle(chain(P, lambda t: x[None] @ P["R"].T, "U", np.zeros(2)), {"h": range(1, T + 1)}, T)
    bundle = viz.explore(model, x, ys, **options).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, {"h": range(1, T + 1)}, None if free else "h", T))
    assert (bundle["diag"]["spectra"] is None) == free


@pytest.mark.parametrize("skip", [1, 2, 3])
def test_the_next_chunk_of_truncated_bptt_from_all_it_carries(skip):
    """rnn.truncated_bptt's Carried (the last state and the skip connection's past states) as
    h0: the page's numbers are those of steps 7..12 of one run over the whole sequence, the
    gradients those of the chunk's loss terms, the Jacobians J(1) holding h(1-d) fixed."""
    model = rnn.LeakyRNN(4, 3, 4, alpha="learned", skip=skip, seed=1)
    for p in model.parameters():
        if p.name != "alpha_logit":
            p.data *= 3.0
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    xs, ys = _ids(1, 12), _ids(2, 12)
    trainer = rnn.Trainer(model, tg.optim.SGD(model.parameters(), lr=0.0))
    _, carried = rnn.truncated_bptt(trainer, xs[:6], ys[:6], chunk=3)
    o = O.oracle(O.later(O.leaky(P, xs, ys, skip=skip), 6), {"h": range(1, 7)}, 6)
    bundle = viz.explore(model, xs[6:], ys[6:], h0=carried).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, {"h": range(1, 7)}, "h", 6))


def test_a_long_runs_summarised_views_show_the_right_numbers_for_the_steps_they_show():
    """1,200 steps: 48 sampled loss terms of the heatmap in 200 column bins (each the largest
    entry of its bin), values in the drawn windows, norms, spectra, ratio, lag decay and
    saturation of every step, against numpy (BPTT by eqs. 10.18-10.21 for each sampled row)."""
    steps = 1200
    model = rnn.ElmanRNN(4, 3, 4, seed=1)
    P = _params(model)
    xs, ys = _ids(1, steps), _ids(2, steps)
    h = np.zeros((steps + 1, 3))
    for t in range(1, steps + 1):
        h[t] = np.tanh(P["b"] + P["W"] @ h[t - 1] + P["U"][:, xs[t - 1]])
    o = h[1:] @ P["V"].T + P["c"]
    probs = np.exp(o - o.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    terms = -np.log(probs[np.arange(steps), ys])
    direct = (probs - np.eye(4)[ys]) @ P["V"]
    gh, future = np.zeros((steps, 3)), np.zeros(3)
    for t in range(steps, 0, -1):
        gh[t - 1] = direct[t - 1] + future
        future = P["W"].T @ ((1 - h[t] ** 2) * gh[t - 1])
    bundle = viz.explore(model, xs, ys).data["bundles"][-1]
    V = bundle["vars"]
    O.shown_is([bundle["loss"]], [terms.sum()], "loss")
    O.shown_is([V["L"]["norm"][str(t)] for t in range(1, steps + 1)], terms, "L(t)")
    O.shown_is([V["h"]["norm"][str(t)] for t in range(1, steps + 1)],
               np.linalg.norm(h[1:], axis=1), "‖h(t)‖")
    O.shown_is([V["h"]["gnorm"][str(t)] for t in range(1, steps + 1)],
               np.linalg.norm(gh, axis=1), "‖∂L/∂h(t)‖")
    shown = [t for t in V["h"]["value"] if t != "0"]
    assert 100 < len(shown) < steps and str(steps) in shown and "1" in shown
    for t in shown:
        O.shown_is(V["h"]["value"][t], h[int(t)], f"h({t})")
        O.shown_is(V["h"]["grad"][t], gh[int(t) - 1], f"∂L/∂h({t})")
    heat = bundle["diag"]["connectivity"]["h"]
    assert heat["sampled"] and len(heat["rows"]) == 48 and len(heat["col_edges"]) == 201
    assert heat["rows"][0] == 1 and heat["rows"][-1] == steps
    cells = []
    for t in heat["rows"]:
        g, row = direct[t - 1], np.zeros(steps)
        row[t - 1] = O.norm(g)
        for k in range(t - 1, 0, -1):
            g = P["W"].T @ ((1 - h[k + 1] ** 2) * g)
            row[k - 1] = O.norm(g)     # 5.5e-163 where its squares underflow
        cells.append(np.maximum.reduceat(row, heat["col_edges"][:-1]))
    O.shown_is(heat["cells"], cells, "binned connectivity of the sampled rows")
    J = (1 - h[1:] ** 2)[:, :, None] * P["W"]
    d = bundle["diag"]
    O.shown_is(d["spectra"]["norm"], np.linalg.norm(J, 2, axis=(1, 2)), "‖J(t)‖₂")
    O.shown_is(d["spectra"]["radius"], np.abs(np.linalg.eigvals(J)).max(axis=1), "ρ(J(t))")
    O.shown_is(d["ratio"], [np.linalg.norm(g @ j) / np.linalg.norm(g) for g, j in zip(gh, J)],
               "eq. 10.52 ratio")
    norms, rate, scale = O.lag_decay(J, 30, 3)
    O.shown_is(d["lag"]["norms"] + [d["lag"]["rate"], d["lag"]["scale"]],
               list(norms) + [rate, scale], "lag decay")
    O.shown_is(d["saturation"], np.mean(1 - h[1:] ** 2 < 0.05, axis=1), "saturation")


def test_a_bidirectional_lstms_backward_chains_s_r_and_h_r():
    """rnn.LSTM(bidirectional=True): h_r(t+1) reaches h_r(t) only through the named gates (no
    edge h_r -> h_r of the variables), so the page took h_r for a chain forward in time: its
    lag decay multiplied the Jacobians ∂h_r(t)/∂h_r(t+1) in the wrong order (0.42924 shown at
    lag 1 where the geometric mean over the end steps is 0.432514, fitted rate 0.293054 for
    0.300287) and its plots said J(t) = ∂h_r(t)/∂h_r(t−1)."""
    model = rnn.LSTM(4, 3, 4, seed=1, bidirectional=True)
    P = _params(model)
    xs, ys = _ids(1, T), _ids(2, T)

    def step(tape, t, x, s, h, sfx):
        after = t + 1 if sfx else t - 1            # the state step t reads
        s, h = tape.read("s" + sfx, after, s), tape.read("h" + sfx, after, h)
        gate = {k: tape.unit("", t, "sigmoid", O.sigmoid(
            P[f"b{k}{sfx}"] + P[f"U{k}{sfx}"][:, x] + h @ P[f"W{k}{sfx}"].T)) for k in "fgo"}
        z = tape.unit("", t, "tanh", np.tanh(P["b" + sfx] + P["U" + sfx][:, x] + h @ P["W" + sfx].T))
        s = tape.state("s" + sfx, t, gate["f"] * s + gate["g"] * z)
        return s, tape.state("h" + sfx, t, tape.unit("", t, "tanh", np.tanh(s)) * gate["o"])

    def forward(tape):
        zero = np.zeros((1, 3), complex)
        s, h = tape.state("s", 0, zero), tape.state("h", 0, zero)
        ahead = {}
        for t in range(1, T + 1):
            s, h = ahead[t] = step(tape, t, xs[t - 1], s, h, "")
        s, h = tape.state("s_r", T + 1, zero), tape.state("h_r", T + 1, zero)
        for t in range(T, 0, -1):
            s, h = step(tape, t, xs[t - 1], s, h, "_r")
            ahead[t] = np.concatenate([ahead[t][1], h], axis=-1)
        for t in range(1, T + 1):
            tape.loss(t, O.cross_entropy(P["c"] + ahead[t] @ P["V"].T, ys[t - 1:t]).mean())
    sites = {p: range(1, T + 1) for p in ("s", "h", "s_r", "h_r")}
    o = O.oracle(forward, sites, T)
    for part in sites:
        bundle = viz.explore(model, xs, ys, part=part).data["bundles"][-1]
        assert bundle["diag"]["backward"] == part.endswith("_r"), part
        _ok(O.check_bundle(bundle, o, sites, part, T, backward=part.endswith("_r")))
        assert sorted(bundle["vars"]["h_r"]["norm"], key=int) == [str(t) for t in range(1, T + 2)]


def test_a_float32_runs_numbers_are_float32_arithmetics_and_the_page_says_so():
    """A float32 Elman net over 40 steps: ‖∂L/∂h(t)‖ and the connectivity agree with the float64
    oracle (of the same float32 weights) to float32's rounding only (4e-6 relative at worst
    here: the sixth digit shown is off), which the page's notes now say; a float64 run has
    no such note."""
    steps = 40
    model = rnn.ElmanRNN(4, 3, 4, seed=1, dtype=np.float32)
    for p in model.parameters():
        p.data *= 2.0
    P = {n: p.data.astype(np.float64) for n, p in model.named_parameters()}
    xs, ys = _ids(1, steps), _ids(2, steps)
    o = O.oracle(O.elman(P, xs, ys), {"h": range(1, steps + 1)}, steps)
    bundle = viz.explore(model, xs, ys).data["bundles"][-1]
    shown = [bundle["vars"]["h"]["gnorm"][str(t)] for t in range(1, steps + 1)]
    want = [np.linalg.norm(o["grad"][("h", t)]) for t in range(1, steps + 1)]
    np.testing.assert_allclose(shown, want, rtol=2e-5)
    assert any(n.startswith("computed in float32 (about 7 significant digits")
               for n in bundle["diag"]["notes"])
    model64 = rnn.ElmanRNN(4, 3, 4, seed=1)
    assert not any("computed in float" in n
                   for n in viz.explore(model64, xs, ys).data["bundles"][-1]["diag"]["notes"])


@pytest.mark.parametrize("attention", [None, "dot", "additive"])
def test_an_encoder_decoder_of_padded_sources_in_a_batch(attention):
    """Sources of 6, 3 and 4 steps in a batch of 3: the encoder carries each row's state over
    its padding (C its last kept state), attention gives padded positions α = 0.  Every number
    against the oracle; the saturation counts the encoder's kept rows and every row of the
    decoder (the mask pads the source alone, as in the loss), and the notes say so; and no
    warning (the op-level histogram of the scores at the lowest float made linspace warn of an
    overflow it then corrects).  The weights are tripled so that some units saturate."""
    import warnings
    model = rnn.EncoderDecoder(4, 3, 4, seed=1, attention=attention)
    for p in model.parameters():
        p.data *= 3
    P = _params(model)
    n_x, n_y, B = 6, 4, 3
    xs, ys = _ids(1, n_x, B), _ids(2, n_y, B)
    mask = (np.arange(n_x)[:, None] < np.array([6, 3, 4])).astype(int)
    sites = {"h": range(1, n_x + 1), "s": range(1, n_y + 1)}
    with np.errstate(invalid="ignore"):        # exp(-inf - max) of the padded scores is 0
        o = O.oracle(O.encoder_decoder(P, xs, ys, 4, B=B, attention=attention, mask=mask),
                     sites, n_x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bundle = viz.explore(model, xs, ys, mask=mask).data["bundles"][-1]
    _ok(O.check_bundle(bundle, o, sites, keep={"encoder": mask}))
    encoder = bundle["diag"]["saturation"]["encoder"]
    every_row = np.round(O.saturation(o["base"], "encoder"), 6)
    assert not np.allclose(encoder[:len(every_row)], every_row), "the padded rows must not count"
    notes = bundle["diag"]["notes"]
    assert any(n.startswith("masked: the mask pads the source") for n in notes), notes
    assert any("kept rows' units" in n for n in notes), notes


def test_a_one_step_run_of_a_bidirectional_lstm_knows_h_r_runs_backward():
    # one step has no h_r(2) in the run to tell the direction by, and the variables of a trace
    # of two have no edge h_r -> h_r: the page said J(t) = ∂h_r(t)/∂h_r(t−1) and keyed the
    # state the chain starts from h_r(0); it is h_r(2), read by step 1
    model = rnn.LSTM(4, 3, 4, bidirectional=True, seed=1)
    for part in ("h_r", "s_r", "h"):
        bundle = viz.explore(model, np.array([1]), np.array([2]), part=part).data["bundles"][-1]
        assert bundle["diag"]["backward"] == part.endswith("_r")
        assert sorted(bundle["vars"][part]["norm"]) == (["1", "2"] if part.endswith("_r")
                                                        else ["0", "1"])


def test_a_systems_first_step_from_a_learned_initial_state_is_shown_saturated():
    """s(1) = tanh(W s(0)) from a named Parameter given as h0 (a learned initial state): its
    units were taken for a function of the weights alone (as a LeakyRNN's leak) and step 1
    shown 0.0 saturated, where 2 of its 3 units are (numpy)."""
    W = tg.Parameter(np.array([[3.0, 0.0, 0.0], [0.0, -4.0, 0.0], [0.0, 0.0, 0.1]]), name="W")
    model = rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=3, name="system",
                           state_name="s")
    s0 = np.ones(3)
    s, want = s0, []
    for _ in range(3):
        s = np.tanh(W.data @ s)
        want.append(round(np.count_nonzero(1 - s * s < 0.05) / 3, 6))
    bundle = viz.explore(model, None, h0=tg.Parameter(s0.copy(), name="s0"),
                         steps=3).data["bundles"][-1]
    assert bundle["diag"]["saturation"] == pytest.approx(want, abs=1e-6)
    assert want[0] > 0


_ROWS = np.array([[1, 1, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1.]])     # lengths 3, 1 and 4 (full)


@pytest.mark.parametrize("make, mask", [
    (lambda: rnn.ElmanRNN(3, 4, 2, seed=0), _ROWS),
    (lambda: rnn.LeakyRNN(3, 4, 2, alpha="learned", seed=0), _ROWS),   # sigma(alpha_logit): no unit
    (lambda: rnn.BidirectionalRNN(3, 4, 2, seed=0), _ROWS),
    (lambda: rnn.LSTM(3, 4, 2, seed=0), np.ones((4, 3))),              # every sequence full
    (lambda: rnn.GRU(3, 4, 2, seed=0), None),
    (lambda: rnn.EchoStateNetwork(3, 4, 2, seed=0), _ROWS),       # the page runs it from h(0) = 0
])
def test_the_explorer_counts_the_saturated_units_rnn_saturation_counts(make, mask):
    # one derivation (rnn.diagnostics.saturation_rows) of the rows kept, the chain the mask pads
    # and the model's own parameters, for rnn.saturation and the explorer's plot alike
    model, r = make(), np.random.default_rng(1)
    xs, ys = 3 * r.normal(size=(4, 3, 3)), r.integers(0, 2, (4, 3))
    if isinstance(model, rnn.EchoStateNetwork):         # squared error of float targets
        ys = r.normal(size=(4, 3, 2))
    options = {} if mask is None else {"mask": mask}
    want = rnn.saturation(model, xs, ys, **options)
    page = viz.explorer._bundle(model, xs, ys, None, None, None, draw=False, options=options)
    assert 0 < want.max() and np.allclose(page["diag"]["saturation"], want, atol=1e-6)


def test_the_oracle_comparison_tells_nan_from_infinity_and_no_number_from_a_number():
    """shown_is took any non-finite shown for any non-finite computed ("Infinity" passed for
    a NaN, "NaN" for -inf): each is now only itself, or None (the page's "no number")."""
    for got, want in ((["NaN"], [np.nan]), (["Infinity"], [np.inf]), (["-Infinity"], [-np.inf]),
                      ([None], [np.nan]), ([None], [np.inf]), ([0.5], [0.5])):
        O.shown_is(got, want, "ok")
    for got, want in ((["Infinity"], [np.nan]), (["NaN"], [-np.inf]), (["-Infinity"], [np.inf]),
                      ([None], [1.0]), (["NaN"], [0.0]), ([1.0], [np.inf]), ([True], [1.0])):
        with pytest.raises(AssertionError):
            O.shown_is(got, want, "wrong")


def test_gradients_whose_squares_underflow_have_their_norms():
    """‖∂L(t)/∂h(k)‖ below about 1e-162 was shown as exactly 0 (the heatmap's "exactly 0", the
    squares of its entries subnormal or 0; from 1e-154 it was off in the 5th digit): the norms
    of rows are scaled where the entries are that small (or past 1e100)."""
    steps = 30
    model = rnn.ElmanRNN(4, 3, 4, seed=1)
    model.W.data *= 1e-6 / np.abs(np.linalg.eigvals(model.W.data)).max()
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    xs, ys = _ids(1, steps), _ids(2, steps)
    o = O.oracle(O.elman(P, xs, ys), {"h": range(1, steps + 1)}, steps)
    bundle = viz.explore(model, xs, ys).data["bundles"][-1]
    assert 0 < bundle["diag"]["connectivity"]["h"]["cells"][-1][0] < 1e-162
    _ok(O.check_bundle(bundle, o, {"h": range(1, steps + 1)}, "h", steps))
    norms = dict(viz.gradient_norms(model.run(xs, ys).loss))
    O.shown_is([norms[1]], [O.norm(o["grad"][("h", 1)])], "viz.gradient_norms h(1)")


def test_a_loss_that_overflows_or_is_nan_and_gradients_past_1e154():
    """A target of 1e200: L(3) overflows to inf ("Infinity" on the page), its gradients are
    about 1e200, whose connectivity was shown as "NaN or infinite" and eq. 10.52 ratio as no
    number (inf / inf); and a NaN input: the loss "NaN".  Every other number is the oracle's."""
    esn = rnn.EchoStateNetwork(3, 4, 2, spectral_radius=1.2, seed=1)
    P = {n: getattr(esn, n).data for n in ("U", "W", "b", "V", "c")}
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    for target, x, loss in ((1e200, 0.0, "Infinity"), (0.0, np.nan, "NaN")):
        ys[2, 0], xs[2, 0] = target, x
        with np.errstate(all="ignore"):
            o = O.oracle(O.echo_state(P, xs, ys), {"h": range(0, 6)}, 5)
            bundle = viz.explore(esn, xs, ys).data["bundles"][-1]
            assert bundle["loss"] == loss
            _ok(O.check_bundle(bundle, o, {"h": range(0, 6)}, None if x != x else "h", 5))


def test_a_lag_decay_whose_products_underflow_has_its_rate_not_zero():
    """Jacobians of about 1e-13: their product over 30 lags is about 1e-390, which underflowed
    to 0, and the page said ρ = 0, "the product of the Jacobians is exactly 0" (no J is 0):
    rnn.lag_decay scales the product by exact powers of two, ρ = 8.54e-14 as numpy's."""
    steps = 40
    model = rnn.ElmanRNN(4, 3, 4, seed=1)
    model.W.data *= 1e-13 / np.abs(np.linalg.eigvals(model.W.data)).max()
    P = {n: p.data.copy() for n, p in model.named_parameters()}
    xs, ys = _ids(1, steps), _ids(2, steps)
    lag = viz.explore(model, xs, ys).data["bundles"][-1]["diag"]["lag"]
    norms, rate, scale = O.lag_decay(O.jacobians(O.elman(P, xs, ys), "h", steps), 30, 3)
    assert 0 < rate < 1e-12
    O.shown_is([lag["rate"], lag["scale"]], [rate, scale], "lag decay fit")
    O.shown_is(lag["norms"], norms, "lag decay")
