"""viz.explore computes its numbers in bulk (issue 22): the norms and histograms of every step on
stacked arrays, the spectra and lag decay in the background while the page is made, the views'
whole-graph walks once per run.  Each bulk form must give exactly what the one-at-a-time form
gives, to the last bit, and the page's diagnostics exactly what rnn.diagnostics gives."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from rnn.diagnostics import own_run
from viz import explorer as explorer_module
from viz import views as views_module
from viz.derive import Variables
from viz.explorer import (_histogram, _histograms, _norm, _norms, _num, _nums, _shown, _shown_all,
                          _vector, _vectors)


def _arrays():
    """Arrays of every kind the page meets: many of one size (stacked), odd sizes alone, scales
    from tiny to near the largest float, zeros, one repeated value, NaN and infinities, ids,
    float32, scalars and empty arrays."""
    rng = np.random.default_rng(7)
    out = []
    for size in (1, 2, 3, 8, 57, 128, 1000):
        for scale in (1e-300, 1e-8, 1.0, 1e8, 1e300):
            out += [rng.normal(size=size) * scale for _ in range(3)]
        out.append(np.zeros(size))
        out.append(np.full(size, -2.5))
        out.append(rng.normal(size=(1, size)).astype(np.float32))
        out.append(rng.integers(0, 5, size))
        out.append(rng.random(size) < 0.5)
    near = np.array([1.7e308, -1.7e308, 3.0, 1.0e308])
    bad = rng.normal(size=8)
    out += [near, near[:2].copy(), np.array(np.inf), np.array([0.5])]
    for value in (np.nan, np.inf, -np.inf):
        b = bad.copy()
        b[3] = value
        out.append(b)
    out.append(np.full(8, np.nan))
    out += [np.zeros(0), np.zeros((0, 3)), np.array(2.0), np.array(7)]
    order = rng.permutation(len(out))          # sizes interleaved, as the page's variables are
    return [out[i] for i in order]


def _same(a, b):
    return (a is None and b is None) or (a == b) or (a != a and b != b)


def test_norms_on_stacked_arrays_are_each_arrays_own_norm_bit_for_bit():
    arrays = _arrays()
    bulk = _norms(arrays)
    one = [_norm(a) for a in arrays]
    assert len(bulk) == len(one)
    for i, (a, b) in enumerate(zip(bulk, one)):
        assert _same(a, b), (i, arrays[i], a, b)
        assert type(a) is float or np.isnan(a) or np.isinf(a)


def test_histograms_on_stacked_arrays_are_each_arrays_own_histogram():
    arrays = _arrays()
    bulk = _histograms(arrays)
    one = [_histogram(a) for a in arrays]
    assert bulk == one
    assert sum(h is not None for h in bulk) > 60         # the stacked path did the most of them


def _edge_cases():
    """Arrays with entries on or near the 12 bins' edges: evenly spaced ones of every length
    (their points are edges or fall near them), decimals of one digit, and scales over 600
    decades."""
    rng = np.random.default_rng(9)
    out = [np.linspace(0, 1, 13)]
    for n in range(2, 40):
        out += [np.linspace(a, b, n) for a, b in ((0, 1), (-1, 2), (0.1, 0.7), (-3.3, -0.2),
                                                  (1e-5, 3e-5), (0, 1e300))]
    out += [np.round(rng.normal(size=25), 1) for _ in range(40)]
    out += [rng.normal(size=13) * 10.0 ** e for e in range(-300, 301, 20)]
    return out


def test_histograms_bin_as_numpy_does_entries_on_an_edge_included():
    # was: 7/12 of np.linspace(0, 1, 13) computed (7/12) * 12 = 6.999... and was counted in bin
    # 6, where np.histogram's edge 7/12 puts it in bin 7; 382 of 3000 random evenly spaced,
    # rounded or scaled arrays disagreed with np.histogram somewhere
    assert _histogram(np.linspace(0, 1, 13))["counts"] == [1] * 11 + [2]
    arrays = _edge_cases()
    expected = [np.histogram(a, 12)[0].tolist() for a in arrays]
    assert [h["counts"] for h in _histograms(arrays)] == expected
    assert [_histogram(a)["counts"] for a in arrays] == expected


def _numbers():
    """Doubles of every kind: normal ones over 60 decades, short decimals and exact ties of
    six digits (what rounding to six digits meets at its edges), powers of ten and their
    neighbours, subnormals, the largest float, signed zeros and the non-finite ones."""
    rng = np.random.default_rng(8)
    n = 20000
    ten = 10.0 ** rng.integers(-30, 30, n)
    parts = [rng.normal(size=n) * 10.0 ** rng.uniform(-30, 30, n),
             rng.integers(-10**7, 10**7, n) / 10.0 ** rng.integers(0, 12, n),
             (rng.integers(10**5, 10**6, n) + 0.5) * ten,
             np.nextafter(ten, 0), np.nextafter(ten, np.inf), ten, -ten,
             rng.normal(size=n), rng.random(n).astype(np.float32).astype(np.float64),
             [0.0, -0.0, 5e-324, -5e-324, 2.2e-308, 1.7976931348623157e308, 999999.5, 99999.95,
              0.15, 2.5e-5, 1e-17, 9.9999995e26, 1e27, np.nan, np.inf, -np.inf]]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def test_numbers_rounded_on_arrays_are_those_python_formats_bit_for_bit():
    values = _numbers()
    bulk, one = _nums(values), [_num(v) for v in values.tolist()]
    assert [None if v is None else v.hex() for v in bulk] == \
        [None if v is None else v.hex() for v in one]      # hex: -0.0 and 0.0 told apart
    shown, one = _shown_all(values), [_shown(v) for v in values.tolist()]
    assert [v if isinstance(v, str) else v.hex() for v in shown] == \
        [v if isinstance(v, str) else v.hex() for v in one]
    arrays = _arrays()
    assert _vectors(arrays) == [_vector(a) for a in arrays]


def _page_and_parts(model, xs, ys):
    page = viz.explore(model, xs, ys)
    return page.data["bundles"][-1]["diag"]


def test_the_pages_spectra_and_lag_decay_are_those_of_rnn_diagnostics_exactly():
    model = rnn.ElmanRNN(5, 20, 5, seed=3)
    rng = np.random.default_rng(1)
    xs, ys = rng.integers(0, 5, 45), rng.integers(0, 5, 45)
    diag = _page_and_parts(model, xs, ys)
    jacs = rnn.jacobians(model, xs)
    norms, radii = rnn.spectra(jacs)
    assert diag["spectra"] == {"norm": _nums(norms), "radius": _nums(radii)}
    decay = rnn.lag_decay(jacs, max_lag=30, ends=3)
    assert diag["lag"] == {"lags": list(range(1, 31)), "norms": _nums(decay.norms),
                           "rate": _num(decay.rate), "scale": _num(decay.scale)}
    assert list(diag) == ["part", "connectivity", "spectra", "lag", "ratio", "saturation", "notes",
                          "backward"]


def test_the_pages_connectivity_is_each_loss_terms_own_backward():
    model = rnn.LSTM(4, 5, 4, seed=2)
    rng = np.random.default_rng(2)
    xs, ys = rng.integers(0, 4, 12), rng.integers(0, 4, 12)
    diag = _page_and_parts(model, xs, ys)
    run = model.run(xs, ys)
    for part in ("h", "s"):
        nodes = run.parts[part]
        cells = diag["connectivity"][part]["cells"]
        assert diag["connectivity"][part]["exact"]
        for t, loss in enumerate(run.losses, start=1):    # one engine sweep per loss term
            grads = tg.grad(loss, nodes, retain_graph=True)
            np.testing.assert_allclose(cells[t - 1], [np.linalg.norm(g) for g in grads],
                                       rtol=1e-5, atol=1e-300)


def test_a_non_finite_jacobian_leaves_its_steps_spectra_out_and_no_lag_decay():
    model = rnn.ElmanRNN(4, 5, 4, seed=3)
    model.W.data = model.W.data.copy()
    model.W.data[0, 0] = np.inf
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, 4, 10), rng.integers(0, 4, 10)
    diag = _page_and_parts(model, xs, ys)
    jacs = rnn.jacobians(model, xs)
    finite = np.isfinite(jacs).all(axis=(1, 2))
    assert not finite.all()
    norms = np.full(len(jacs), np.nan)
    radii = np.full(len(jacs), np.nan)
    if finite.any():
        norms[finite], radii[finite] = rnn.spectra(jacs[finite])
    assert diag["spectra"] == {"norm": _nums(norms), "radius": _nums(radii)}
    assert diag["lag"] is None
    assert any("not finite" in note for note in diag["notes"])


def _explorer_variables(model, xs, ys):
    run, own = own_run(model, xs, ys)
    return explorer_module._own_variables([run.loss], own, run, None)[0]


def test_the_views_walk_the_whole_graph_once_per_run_and_draw_the_same_windows(monkeypatch):
    model = rnn.BidirectionalRNN(3, 2, 3, seed=1)          # two chains, rails stacked
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    kept = _explorer_variables(model, xs, ys)
    plain = Variables(kept.keys, kept.edges, kept.nodes, kept.paths, kept.fixed)
    walks = []
    levels = views_module._levels
    monkeypatch.setattr(views_module, "_levels", lambda *a, **k: walks.append(1) or levels(*a, **k))
    for shown in (None, range(1, 11), range(11, 21), range(31, 41)):
        sources = []
        for variables in (kept, plain):
            g = views_module.new_digraph("u")
            views_module.draw_unrolled(g, variables, "u", keep=3, shown=shown)
            sources.append(g.source)
        assert sources[0] == sources[1]
    assert len(kept._view_memo) == 1
    assert len(walks) == 2 + 4 * 2          # the explorer's variables: once; the plain ones: each call


def test_the_page_is_the_same_whichever_background_task_finishes_first(monkeypatch):
    model = rnn.ElmanRNN(4, 6, 4, seed=5)
    rng = np.random.default_rng(5)
    xs, ys = rng.integers(0, 4, 25), rng.integers(0, 4, 25)
    first = viz.explore(model, xs, ys).html
    spectra = rnn.spectra

    def slow(jacs):                    # the spectra come in after everything else
        import time
        time.sleep(0.3)
        return spectra(jacs)
    monkeypatch.setattr(rnn, "spectra", slow)
    assert viz.explore(model, xs, ys).html == first


@pytest.mark.parametrize("design", [rnn.ElmanRNN, rnn.LSTM, rnn.GRU])
def test_the_pages_norms_are_the_norms_of_the_engines_values(design):
    model = design(4, 3, 4, seed=6)
    rng = np.random.default_rng(6)
    xs, ys = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
    bundle = viz.explore(model, xs, ys).data["bundles"][0]
    variables = _explorer_variables(model, xs, ys)
    for (name, t), node in variables.nodes.items():
        key = "s" if t is None else str(t)
        assert bundle["vars"][name]["norm"][key] == float(f"{_norm(node.data):.6g}")


@pytest.mark.parametrize("model", [rnn.ElmanRNN(3, 2, 3), rnn.LSTM(3, 2, 3), rnn.GRU(3, 2, 3),
                                   rnn.BidirectionalRNN(3, 2, 3),
                                   rnn.EncoderDecoder(3, 2, 3, attention="additive")],
                         ids=lambda m: m.name)
def test_the_folded_views_window_from_one_walk_is_what_derive_gives_with_the_window(model):
    from viz.derive import derive
    from viz.views import BOOK_HIDDEN, KEEP
    rng = np.random.default_rng(9)
    xs = rng.integers(0, 3, 23)
    ys = rng.integers(0, 3, 19 if isinstance(model, rnn.EncoderDecoder) else 23)
    run = model.run(xs, ys)
    whole = derive([run.loss], hide=BOOK_HIDDEN, inside=False)
    want = derive([run.loss], hide=BOOK_HIDDEN, window=KEEP, inside=False)
    got = explorer_module._window_of(whole, KEEP)
    assert len(want.edges) < len(whole.edges)              # the window left edges out
    assert got.keys == want.keys and got.nodes == want.nodes and got.fixed == want.fixed
    assert list(got.edges.items()) == list(want.edges.items())
    assert list(got.paths.items()) == list(want.paths.items())


def test_diagrams_rendered_in_batches_are_those_rendered_one_by_one():
    import graphviz
    model = rnn.GRU(3, 2, 3, seed=1)
    rng = np.random.default_rng(10)
    variables = _explorer_variables(model, rng.integers(0, 3, 35), rng.integers(0, 3, 35))
    graphs = []
    for shown in (None, range(1, 11), range(11, 21), range(21, 31), range(31, 36)):
        g = views_module.new_digraph("u")
        views_module.draw_unrolled(g, variables, "u", keep=3, shown=shown,
                                   gap_text=lambda name, n: f"{name} &#215;{n:,}")
        graphs.append(g)
    graphs.append(graphviz.Source('digraph { a [label="<?xml a label"]; a -> b }'))
    assert explorer_module._svg_texts(graphs) == [explorer_module._svg_text(g) for g in graphs]
    broken = graphs[:3] + [graphviz.Source("digraph { a -> }")] + graphs[3:]
    with pytest.raises(viz.RenderError):          # the batch fails; the broken graph says so
        explorer_module._svg_texts(broken)


def test_the_bidirectional_pages_jacobians_are_each_chains_own_in_its_own_direction():
    """part="g" (the chain backward in time): J(t) = ∂g(t)/∂g(t+1), and the lag decay is
    ‖∂g(t)/∂g(t+k)‖, checked against central differences of a numpy forward pass (before:
    "no Jacobians for this design"; a product in the forward order would be another number)."""
    from test_rnn_diagnostics import EPS, _bidirectional_chains
    model = rnn.BidirectionalRNN(4, 3, 4, seed=1)
    P = {n: p.data for n, p in model.named_parameters()}
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, 6), rng.integers(0, 4, 6)
    T, H = 6, 3

    def d_g1(k):                  # ∂g(1)/∂g(1+k) by central differences
        fd = np.zeros((H, H))
        for j in range(H):
            e = np.zeros(H)
            e[j] = EPS
            fd[:, j] = (_bidirectional_chains(P, xs, 1 + k, e, "g")[1][0]
                        - _bidirectional_chains(P, xs, 1 + k, -e, "g")[1][0]) / (2 * EPS)
        return fd
    for part in ("h", "g"):
        diag = viz.explore(model, xs, ys, part=part).data["bundles"][-1]["diag"]
        assert diag["backward"] == (part == "g")
        chain = _bidirectional_chains(P, xs)[0 if part == "h" else 1]
        W = P["W"] if part == "h" else P["Wg"]
        jacs = np.stack([(1 - v ** 2)[:, None] * W for v in chain])
        np.testing.assert_allclose(diag["spectra"]["norm"],
                                   [np.linalg.norm(J, 2) for J in jacs], rtol=1e-5)
        np.testing.assert_allclose(diag["spectra"]["radius"],
                                   [np.abs(np.linalg.eigvals(J)).max() for J in jacs], rtol=1e-5)
    # six steps, lags 1..6 and one end: the end is t = 1, the norms ‖∂g(1)/∂g(1+k)‖
    assert diag["lag"]["lags"] == list(range(1, T + 1))
    np.testing.assert_allclose(diag["lag"]["norms"],
                               [np.linalg.norm(d_g1(k), 2) for k in range(1, T + 1)], rtol=1e-5)
    run = model.run(xs, ys)
    grads = tg.grad(run.loss, run.parts["g"])
    ratio = [np.linalg.norm(g.reshape(-1) @ J) / np.linalg.norm(g) for g, J in zip(grads, jacs)]
    np.testing.assert_allclose(diag["ratio"], ratio, rtol=1e-5)
