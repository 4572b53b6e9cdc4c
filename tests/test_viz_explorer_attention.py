"""The explorer of a design with attention shows the alignment α(t, k) of the run as a heatmap,
linked with the graph: hovering cell (t, k) lights up decoder step t and encoder step k."""

import numpy as np

import rnn
import viz
from test_viz_explorer_browser import Page
from viz_layout import readme_attention_decoder

XS = np.array([[1], [3], [5], [2]])
YS = np.array([[0], [2], [4]])


def _model():
    return rnn.EncoderDecoder(6, 8, 6, seed=0, attention="additive")


def test_the_page_data_has_the_runs_alignment_rows_t_columns_k():
    model = _model()
    alignment = viz.explore(model, XS, YS).data["bundles"][-1]["alignment"]
    expected = np.stack([a.data[0] for a in model.run(XS, YS).attention])
    np.testing.assert_allclose(alignment["cells"], expected, rtol=1e-5)     # 6 digits, as the page
    assert len(alignment["cells"]) == 3 and len(alignment["cells"][0]) == 4


def test_a_design_without_attention_has_no_alignment():
    data = viz.explore(rnn.EncoderDecoder(6, 8, 6, seed=0), XS, YS).data
    assert data["bundles"][-1]["alignment"] is None


def test_hovering_an_alignment_cell_lights_decoder_step_t_and_encoder_step_k(browser,  # noqa: F811
                                                                             tmp_path):
    model = _model()
    path = tmp_path / "attention.html"
    explorer = viz.explore(model, XS, YS)
    explorer.save(path)
    names = explorer.data["names"]
    page = Page(browser, path)
    centre = page.page.evaluate("window.explorer.alignCenter(2, 3)")
    box = page.page.locator("#align").bounding_box()
    page.page.mouse.move(box["x"] + centre["x"], box["y"] + centre["y"])
    lit = {(names[int(key[1:].split("_")[0])], int(key.split("_")[1])) for key in page.titles("hl")}
    assert {("α", 2), ("ctx", 2), ("s", 2), ("L", 2), ("h", 3), ("x", 3)} <= lit
    assert all((name, t) in {("h", 3), ("x", 3)} or t == 2 for name, t in lit)
    alpha = model.run(XS, YS).attention[1].data[0, 2]
    assert page.page.inner_text("#align-label") == f"α(2, 3) = {alpha:.6g}"
    assert page.page.inner_text("#align-title") == ("alignment α(t, k) (rows: decoder step t, "
                                                    "columns: encoder step k)")
    assert page.errors == []
    page.page.mouse.move(1, 1)
    assert page.titles("hl") == set()
    page.close()


def test_an_alignment_weight_that_is_nan_is_drawn_and_named_as_such_not_as_zero(browser,
                                                                                tmp_path):
    # a NaN in x(3) makes h(3), h(4) and so every α(t, k) NaN: the cells were drawn white, as
    # α = 0, and the label said "n/a"
    model = rnn.EncoderDecoder(3, 4, 6, seed=0, attention="additive")
    xs = np.random.default_rng(0).normal(size=(4, 1, 3))
    xs[2, 0, 0] = np.nan
    path = tmp_path / "attention.html"
    with np.errstate(invalid="ignore"):
        explorer = viz.explore(model, xs, YS)
    explorer.save(path)
    assert explorer.data["bundles"][-1]["alignment"]["cells"][1] == [None] * 4
    page = Page(browser, path)
    centre = page.page.evaluate("window.explorer.alignCenter(2, 1)")
    box = page.page.locator("#align").bounding_box()
    pixel = page.page.evaluate("""([x, y]) => {
        const c = document.getElementById('align'), f = c.width / c.clientWidth;
        return [...c.getContext('2d').getImageData(Math.floor(x * f), Math.floor(y * f), 1, 1).data];
    }""", [centre["x"], centre["y"]])
    assert pixel[:3] == [0xe7, 0x29, 0x8a], pixel            # the heatmap's "NaN or infinite"
    page.page.mouse.move(box["x"] + centre["x"], box["y"] + centre["y"])
    assert page.page.inner_text("#align-label") == "α(2, 1) = NaN or infinite"
    # the encoder's Jacobians J(3), J(4) are NaN: their spectra are gaps, and the lag decay
    # said "no Jacobians for this design"
    assert "a Jacobian is not finite" in page.page.text_content("#plot-lag")
    assert page.errors == []
    page.close()


def _user_decoder(name="α", weights=True):
    """The README's decoder (viz_layout's), with its memory and weights Wd, R as arrays."""
    decoder = readme_attention_decoder(name, weights)
    encoder = rnn.ElmanRNN(3, 4, 3, seed=0)     # the memory it reads, as readme_attention_decoder's
    memory = np.stack([h.data for h in encoder.run(np.array([0, 1, 2, 1])).states])
    Wd, R, _ = (p.data for p in decoder.parameters())
    return decoder, memory, Wd, R


def test_a_users_attention_cell_named_alpha_has_its_alignment_or_a_note_saying_why_not():
    # the README's attention decoder, an rnn.Recurrence, had no alignment panel and no word on
    # the page (only EncoderDecoder's run.attention was read): its α(t), named "α" at every
    # step, are now the heatmap, each row numpy's softmax(s(t-1) memoryᵀ)
    decoder, memory, Wd, R = _user_decoder()
    xs = np.random.default_rng(2).normal(size=(3, 4))
    bundle = viz.explore(decoder, xs, np.array([0, 2, 1])).data["bundles"][-1]
    s, want = np.zeros(4), []
    for x in xs:
        e = memory @ s
        alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        want.append(alpha)
        s = np.tanh(Wd @ s + R @ (alpha @ memory) + x)
    a = bundle["alignment"]
    np.testing.assert_allclose(a["cells"], want, rtol=1e-5)
    assert a["decoder"] == ["α"] and a["encoder"] == [] and "entry k of α(t)" in a["title"]
    # named α but no weights (tanh, not a softmax): no heatmap, and a note says why
    decoder, *_ = _user_decoder(weights=False)
    bundle = viz.explore(decoder, xs, np.array([0, 2, 1])).data["bundles"][-1]
    assert bundle["alignment"] is None
    assert any(n.startswith("dec's steps have a variable named α, but α(1) is no set of weights")
               for n in bundle["diag"]["notes"]), bundle["diag"]["notes"]
    decoder, *_ = _user_decoder(name="weights")       # another name: no attention the page knows
    bundle = viz.explore(decoder, xs, np.array([0, 2, 1])).data["bundles"][-1]
    assert bundle["alignment"] is None and not any("α" in n for n in bundle["diag"]["notes"])
