"""The explorer page in a real browser (Playwright driving the system's Chromium).

Without Chromium or the playwright package these tests are skipped, saying why; under CI
(the environment variable CI=true) that skip is an error, so CI never passes without them.
"""

import json

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from test_rnn_cells import user_lstm
from viz.derive import derive


class Page:
    """A page of the browser with its console errors collected."""

    def __init__(self, browser, path, hash_=""):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1200})
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"file://{path}" + (f"#{hash_}" if hash_ else ""))
        self.page.wait_for_function("window.explorer !== undefined")

    def node(self, title):
        return self.page.locator(f"#graph g.node:has(> title:text-is('{title}'))")

    def titles(self, cls):
        return set(self.page.eval_on_selector_all(f"#graph g.node.{cls}",
                                                  "els => els.map(e => e.dataset.key)"))

    def close(self):
        self.page.close()


def _elman(steps=5):
    model = rnn.ElmanRNN(4, 3, 4, seed=2)
    rng = np.random.default_rng(3)
    return model, rng.integers(0, 4, steps), rng.integers(0, 4, steps)


def _save(tmp_path, model, *args, **kwargs):
    path = tmp_path / f"{model.name}.html"
    viz.explore(model, *args, **kwargs).save(path)
    return path


def _node_id(names, name, t):
    return f"u{names.index(name)}" + ("" if t is None else f"_{t}")


def _designs():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 6)
    lstm, _ = user_lstm()
    return [("elman", rnn.ElmanRNN(4, 3, 4), (ids, ids)),
            ("jordan", rnn.JordanRNN(4, 3, 4), (ids, ids)),
            ("seq2one", rnn.SequenceToOne(4, 3, 2), (ids, 1)),
            ("vec2seq", rnn.VectorToSequence(3, 3, 4), (rng.normal(size=3), ids)),
            ("conditional", rnn.ConditionalRNN(4, 3, 4), (ids, ids)),
            ("user_lstm", lstm, (rng.normal(size=(6, 3)), ids)),
            ("bidirectional", rnn.BidirectionalRNN(4, 3, 4), (ids, ids)),
            ("encdec", rnn.EncoderDecoder(4, 3, 4), (ids, ids[:4]))]


@pytest.mark.parametrize("name, model, args", _designs(), ids=[d[0] for d in _designs()])
def test_the_page_of_every_design_loads_with_no_console_error(browser, tmp_path, name, model,
                                                             args):
    page = Page(browser, _save(tmp_path, model, *args))
    page.page.click("#view-folded")
    page.page.click("#view-unrolled")
    page.page.check("#ops-toggle")
    assert page.page.locator("#graph g.node").count() > 0
    assert page.errors == []
    page.close()


def test_clicking_a_node_shows_the_engines_value_and_gradient(browser, tmp_path):
    model, xs, ys = _elman()
    page = Page(browser, _save(tmp_path, model, xs, ys))
    run = model.run(xs, ys)
    names = derive([run.loss], hide=("a",)).names
    for t in (2, 5):
        h = run.parts["h"][t - 1]
        (grad,) = tg.grad(run.loss, [h], retain_graph=True)
        page.node(_node_id(names, "h", t)).click()
        assert page.page.inner_text("#info-title") == f"h({t})"
        shown = json.loads(page.page.get_attribute("#info-value", "data-values"))
        np.testing.assert_allclose(shown, h.data, rtol=1e-5)
        shown = json.loads(page.page.get_attribute("#info-grad", "data-values"))
        np.testing.assert_allclose(shown, grad, rtol=1e-5)
        assert float(page.page.inner_text("#info-gnorm")) == pytest.approx(np.linalg.norm(grad),
                                                                           rel=1e-5)
    assert page.errors == []
    page.close()


def test_the_sweep_slider_lights_nodes_in_the_engines_visit_order(browser, tmp_path):
    model, xs, ys = _elman(steps=4)
    page = Page(browser, _save(tmp_path, model, xs, ys))
    run = model.run(xs, ys)
    variables = derive([run.loss], hide=("a",))
    key_of = {id(node): key for key, node in variables.nodes.items()}
    expected = [_node_id(variables.names, *key_of[id(n)]) for n in tg.sweep_order(run.loss)
                if id(n) in key_of]
    total = int(page.page.get_attribute("#sweep", "max"))
    assert total == len(tg.sweep_order(run.loss))
    lit = []
    for position in range(1, total + 1):
        page.page.eval_on_selector("#sweep", "(el, v) => { el.value = v; "
                                   "el.dispatchEvent(new Event('input')); }", position)
        current = page.titles("current")
        assert len(current) <= 1
        lit.extend(current)
        assert len(page.titles("done")) == max(0, len(lit) - (1 if current else 0))
    assert lit == expected
    assert page.errors == []
    page.close()


def test_hovering_a_heatmap_cell_highlights_that_loss_term_and_state(browser, tmp_path):
    model, xs, ys = _elman()
    page = Page(browser, _save(tmp_path, model, xs, ys))
    names = page.page.evaluate("explorer.data.names")
    box = page.page.locator("#heat").bounding_box()
    for t, k in ((4, 2), (5, 5), (1, 1)):
        at = page.page.evaluate(f"explorer.cellCenter({t}, {k})")
        page.page.mouse.move(box["x"] + at["x"], box["y"] + at["y"])
        assert page.titles("hl") == {_node_id(names, "L", t), _node_id(names, "h", k)}
        C = rnn.connectivity(model, xs, ys)
        assert f"{C[t - 1, k - 1]:.6g}"[:5] in page.page.inner_text("#heat-label")
    page.node(_node_id(names, "h", 3)).click()          # and the other way: its column lights
    assert page.page.evaluate("explorer.state.sel") == {"name": "h", "t": 3}
    assert page.errors == []
    page.close()


def test_hovering_a_cell_of_hidden_steps_lights_the_boxes_that_hide_them(browser, tmp_path):
    model, xs, ys = _elman(steps=30)
    page = Page(browser, _save(tmp_path, model, xs, ys))
    names = page.page.evaluate("explorer.data.names")
    box = page.page.locator("#heat").bounding_box()
    for (t, k), lit in {(15, 12): {f"u{names.index('h')}_gap"},          # both hidden (L has no box)
                        (29, 12): {_node_id(names, "L", 29), f"u{names.index('h')}_gap"},
                        (15, 2): {_node_id(names, "h", 2)}}.items():
        at = page.page.evaluate(f"explorer.cellCenter({t}, {k})")
        page.page.mouse.move(box["x"] + at["x"], box["y"] + at["y"])
        assert page.titles("hl") == lit, (t, k)
    assert page.errors == []
    page.close()


def test_a_step_typed_in_opens_its_window_and_selects_it(browser, tmp_path):
    model, xs, ys = _elman(steps=30)
    page = Page(browser, _save(tmp_path, model, xs, ys))
    page.page.fill("#goto-step", "17")
    page.page.dispatch_event("#goto-step", "change")
    assert page.page.evaluate("explorer.state.view") == "window"
    assert page.page.inner_text("#win-label").strip() == "steps 11\u201320 of 30"
    assert page.titles("sel") == {_node_id(page.page.evaluate("explorer.data.names"), "h", 17)}
    assert page.errors == []
    page.close()


def test_the_hash_restores_a_view(browser, tmp_path):
    model, xs, ys = _elman(steps=30)
    path = _save(tmp_path, model, xs, ys)
    page = Page(browser, path)
    page.page.locator("#graph g.node:has(> title:text-matches('_gap$'))").first.click()
    page.node(_node_id(page.page.evaluate("explorer.data.names"), "h", 5)).click()
    page.page.eval_on_selector("#sweep", "el => { el.value = 40; el.dispatchEvent(new Event('input')); }")
    hash_ = page.page.evaluate("location.hash").lstrip("#")
    state = page.page.evaluate("explorer.state")
    svg = page.page.inner_html("#graph")
    page.close()
    again = Page(browser, path, hash_)
    assert again.page.evaluate("explorer.state") == state
    assert state["view"] == "window" and state["sel"] == {"name": "h", "t": 5}
    assert again.page.inner_html("#graph") == svg
    assert again.page.inner_text("#info-title") == "h(5)"
    assert again.errors == []
    again.close()


def test_the_op_level_toggle_shows_the_ops_of_the_selected_step(browser, tmp_path):
    model, xs, ys = _elman()
    page = Page(browser, _save(tmp_path, model, xs, ys))
    names = page.page.evaluate("explorer.data.names")
    page.node(_node_id(names, "h", 3)).click()
    page.page.check("#ops-toggle")
    run = model.run(xs, ys)
    ops = page.page.evaluate("explorer.data.bundles[0].ops['3'].nodes")
    tanh = [j for j in range(len(ops)) if page.node(f"op{j}").locator("text").first.text_content() == "tanh"]
    assert len(tanh) == 1
    page.node(f"op{tanh[0]}").click()
    h = run.parts["h"][2]
    (grad,) = tg.grad(run.loss, [h])
    assert float(page.page.inner_text("#info-norm")) == pytest.approx(np.linalg.norm(h.data), rel=1e-5)
    assert float(page.page.inner_text("#info-gnorm")) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert page.errors == []
    page.close()


# ------------------------------------------------------------------ hostile names and links

XSS = "<img src=x onerror=alert(1)>"


def _hostile_model(bad):
    """A user's recurrence with ``bad`` in every name slot: model, state part, a .named()
    intermediate and a parameter."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(0, 0.5, (3, 3)), name=f"W{bad}")
    U = tg.Parameter(rng.normal(0, 0.5, (3, 2)), name="U")
    V = tg.Parameter(rng.normal(0, 0.5, (4, 3)), name="V")

    def step(h, x):
        return (h @ W.T + x @ U.T).named(f"a{bad}").tanh()
    return rnn.Recurrence(step, [W, U, V], 3, n_in=2, readout=lambda h: h @ V.T,
                          name=f"m{bad}", state_name=f"h{bad}")


class HostilePage(Page):
    """A page that fails on any dialog (alert, confirm, prompt) a script would open."""

    def __init__(self, browser, path, hash_=""):
        self.dialogs = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1200})
        self.errors = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"file://{path}" + (f"#{hash_}" if hash_ else ""))
        self.page.wait_for_function("window.explorer !== undefined")

    def injected(self):
        """Elements no explorer page has: the payloads' img, script or iframe outside the data."""
        return self.page.evaluate("""() => Array.from(document.querySelectorAll('img, iframe, object, embed, script'))
            .filter(e => !(e.tagName === 'SCRIPT' && (e.id === 'explorer-data' || !e.src && e.textContent.includes('window.explorer'))))
            .map(e => e.outerHTML)""")


@pytest.mark.parametrize("hash_", ["sel=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E,1", "sel=%E0%A4%A,1",
                                   "sel=__proto__,1", "sel=constructor,2", "b=__proto__&v=constructor",
                                   "sel=toString,1&hp=__proto__&sw=1e99", "sel=%ED%A0%80,1",
                                   "v=w99999999999&b=-1&sel=h,,,,"])
def test_a_hostile_link_runs_nothing_and_the_page_starts(browser, tmp_path, hash_):
    model, xs, ys = _elman()
    page = HostilePage(browser, _save(tmp_path, model, xs, ys), hash_)
    page.node(_node_id(page.page.evaluate("explorer.data.names"), "h", 2)).click()
    assert page.page.inner_text("#info-title") == "h(2)"        # the page works
    assert page.dialogs == [] and page.injected() == [] and page.errors == []
    page.close()


@pytest.mark.parametrize("bad", [XSS, "<!--<script>", "</script><script>alert(1)</script>",
                                 "\ud800", "\u2028\u2029&amp;\"'"])
def test_hostile_names_in_every_slot_are_shown_as_text_and_run_nothing(browser, tmp_path, bad):
    model = _hostile_model(bad)
    xs = np.random.default_rng(1).normal(size=(4, 2))
    path = tmp_path / "hostile.html"
    viz.explore(model, xs, np.array([0, 1, 2, 3]), title=f"title{bad}").save(path)
    page = HostilePage(browser, path)
    names = page.page.evaluate("explorer.data.names")
    assert f"h{bad}" in names and f"a{bad}" in names        # the names arrive as they are
    assert page.page.inner_text("#title").startswith("title")
    for name in (f"h{bad}", f"a{bad}"):
        page.node(_node_id(names, name, 2)).click()
        assert page.page.evaluate("explorer.state.sel") == {"name": name, "t": 2}
        assert page.page.evaluate("document.getElementById('info-title').textContent") == f"{name}(2)"
        hash_ = page.page.evaluate("location.hash").lstrip("#")
        again = HostilePage(browser, path, hash_)          # the link restores the selection
        assert again.page.evaluate("explorer.state.sel") == {"name": name, "t": 2}
        assert again.dialogs == [] and again.injected() == [] and again.errors == []
        again.close()
    page.page.click("#view-folded")
    page.page.check("#ops-toggle")
    page.page.mouse.move(*_heat_point(page, 3, 2))
    assert page.dialogs == [] and page.injected() == [] and page.errors == []
    page.close()


def _heat_point(page, t, k):
    page.page.locator("#heat").scroll_into_view_if_needed()
    box = page.page.locator("#heat").bounding_box()
    at = page.page.evaluate(f"explorer.cellCenter({t}, {k})")
    return box["x"] + at["x"], box["y"] + at["y"]


def test_the_page_forbids_inline_scripts_and_handlers_by_its_content_security_policy(browser,
                                                                                    tmp_path):
    model, xs, ys = _elman()
    page = HostilePage(browser, _save(tmp_path, model, xs, ys))
    policy = page.page.get_attribute("meta[http-equiv='Content-Security-Policy']", "content")
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    page.page.evaluate("""() => { const i = document.createElement('img');
        i.setAttribute('onerror', 'alert(1)'); i.src = 'data:,x'; document.body.append(i); }""")
    page.page.wait_for_timeout(100)    # the image fails at once; a handler would have run
    assert page.dialogs == []
    page.close()


# ------------------------------------------------------------------ inline in a notebook

class _Served:
    """A folder served over http on 127.0.0.1 (a free port) while the block runs, as a notebook
    server would serve a notebook's page; the server stops when the block ends."""

    def __init__(self, folder):
        import functools
        import http.server
        import threading
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        return False


def _quiet_handler():
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):      # no request lines in the test output
            pass
    return Quiet


_QuietHandler = _quiet_handler()


def test_the_notebook_iframe_served_over_http_starts_and_clicks_without_errors(browser, tmp_path):
    model, xs, ys = _elman()
    (tmp_path / "notebook.html").write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'></head><body>"
        + viz.explore(model, xs, ys)._repr_html_() + "</body></html>", encoding="utf-8")
    with _Served(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/notebook.html")
        frame = page.frames[1]
        frame.wait_for_function("window.explorer !== undefined")
        names = frame.evaluate("explorer.data.names")
        frame.locator(f"#graph g.node:has(> title:text-is('{_node_id(names, 'h', 3)}'))").click()
        assert frame.inner_text("#info-title") == "h(3)"
        frame.click("#view-folded")
        frame.eval_on_selector("#sweep", "el => { el.value = 5; el.dispatchEvent(new Event('input')); }")
        assert frame.evaluate("explorer.state.sweep") == 5
        page.close()
    assert errors == []


# ------------------------------------------------------------------ in a lecture room

LECTURE = {"width": 1280, "height": 720}


@pytest.fixture(scope="module")
def lstm_page(tmp_path_factory):
    """The page `tinygraph explore --model lstm` writes (40 steps)."""
    from viz.cli import main
    out = tmp_path_factory.mktemp("lstm")
    assert main(["explore", "--model", "lstm", "--out", str(out)]) == 0
    return out / "lstm_explorer.html"


class SizedPage(HostilePage):
    def __init__(self, browser, path, hash_="", viewport=None):
        self.dialogs = []
        self.page = browser.new_page(viewport=viewport or LECTURE)
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"file://{path}" + (f"#{hash_}" if hash_ else ""))
        self.page.wait_for_function("window.explorer !== undefined")

    def fit(self):
        """Horizontal overflow of the graph pane and of the page (px), the median node circle (px)."""
        return self.page.evaluate("""() => { const g = document.getElementById('graph');
            const ws = Array.from(g.querySelectorAll('g.node ellipse')).map(e => e.getBoundingClientRect().width)
              .sort((a, b) => a - b);
            const d = document.documentElement;
            return [g.scrollWidth - g.clientWidth, d.scrollWidth - d.clientWidth, ws[Math.floor(ws.length / 2)]]; }""")

    def in_pane(self, selector):
        return self.page.evaluate("""(sel) => { const n = document.querySelector(sel); if (!n) return false;
            const g = document.getElementById('graph').getBoundingClientRect(), b = n.getBoundingClientRect();
            return b.left >= g.left - 1 && b.right <= g.right + 1 && b.top >= g.top - 1 && b.bottom <= g.bottom + 1; }""",
                                  selector)


@pytest.mark.parametrize("viewport", [LECTURE, {"width": 1024, "height": 768}],
                         ids=["1280x720", "1024x768"])
def test_the_lstm_page_fits_a_projector_with_legible_nodes(browser, lstm_page, viewport):
    page = SizedPage(browser, lstm_page, viewport=viewport)
    for view in ("summary", "window"):
        if view == "window":
            page.page.evaluate("explorer.clickNode(document.querySelector('#graph g.node[data-key$=\"_gap\"]').dataset.key)")
            assert page.page.evaluate("explorer.state.view") == "window"
        pane, document, node = page.fit()
        assert pane == 0 and document == 0, view
        assert node >= 24, view
    assert page.errors == []
    page.close()


def test_the_pages_of_a_window_show_every_step_and_the_zoom_changes_the_scale(browser, lstm_page):
    page = SizedPage(browser, lstm_page, hash_="v=w0")
    names = page.page.evaluate("explorer.data.names")
    pages = page.page.evaluate("explorer.graph.pages.length")
    assert pages > 1 and page.page.is_visible("#page-nav")
    seen = set()
    for _ in range(pages):
        seen |= {t for t in range(1, 11)
                 if page.in_pane(f"#graph g.node[data-key='{_node_id(names, 'h', t)}'] ellipse")}
        assert page.fit()[0] == 0
        page.page.click("#page-next")
    assert seen == set(range(1, 11))
    before = page.fit()[2]
    page.page.click("#zoom-in")
    assert page.fit()[2] == pytest.approx(before * 1.25, rel=1e-3) and page.fit()[0] == 0
    page.page.click("#zoom-fit")
    assert page.fit()[2] == pytest.approx(before, rel=1e-3)
    assert page.errors == []
    page.close()


def test_the_backward_sweep_keeps_the_lit_node_in_view_and_play_turns_into_pause(browser, lstm_page):
    page = SizedPage(browser, lstm_page, hash_="v=w0")
    total = int(page.page.get_attribute("#sweep", "max"))
    checked = 0
    for position in range(1, total + 1, 15):
        page.page.eval_on_selector("#sweep", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                                   position)
        if page.page.locator("#graph g.node.current").count():
            assert page.in_pane("#graph g.node.current"), position
            checked += 1
    assert checked > 10
    labels = page.page.evaluate("""() => { const b = document.getElementById('sweep-play'), out = [b.textContent];
        b.click(); out.push(b.textContent); b.click(); out.push(b.textContent); return out; }""")
    assert labels == ["\u25b6 play", "\u23f8 pause", "\u25b6 play"]     # (no timer runs in between)
    assert page.errors == []
    page.close()


def test_a_folded_node_asks_for_a_step_or_takes_the_selected_one(browser, tmp_path):
    model, xs, ys = _elman()
    page = SizedPage(browser, _save(tmp_path, model, xs, ys))
    names = page.page.evaluate("explorer.data.names")
    page.page.click("#view-folded")
    page.node(f"f{names.index('h')}").click()
    assert page.page.evaluate("explorer.state.sel") is None          # not a silent t = 1
    assert page.page.inner_text("#info-title") == "h: which step?"
    page.page.fill("#ask-step", "4")
    page.page.dispatch_event("#ask-step", "change")
    assert page.page.evaluate("explorer.state.sel") == {"name": "h", "t": 4}
    page.node(f"f{names.index('o')}").click()                       # a step is selected: it is used
    assert page.page.evaluate("explorer.state.sel") == {"name": "o", "t": 4}
    assert page.page.inner_text("#info-title") == "o(4)"
    assert page.errors == []
    page.close()


def test_a_heatmap_click_on_a_hidden_step_opens_the_window_that_holds_it(browser, tmp_path):
    model, xs, ys = _elman(steps=30)
    page = SizedPage(browser, _save(tmp_path, model, xs, ys))
    names = page.page.evaluate("explorer.data.names")
    page.page.mouse.click(*_heat_point(page, 20, 15))
    assert page.page.evaluate("explorer.state.view") == "window"
    assert page.page.inner_text("#win-label").strip() == "steps 11\u201320 of 30"
    assert page.page.evaluate("explorer.state.sel") == {"name": "h", "t": 15}
    assert page.in_pane(f"#graph g.node[data-key='{_node_id(names, 'h', 15)}'] ellipse")
    assert page.page.inner_text("#info-title") == "h(15)"
    assert "not kept" not in page.page.inner_text("#info")
    assert page.errors == []
    page.close()


def test_the_heatmap_has_ticks_one_scale_for_before_and_after_and_tells_zeros_from_tiny(browser,
                                                                                        tmp_path):
    model, xs, ys = _elman(steps=8)
    before = {k: v * (1e-5 if k == "W" else 1.0) for k, v in model.state_dict().items()}
    page = SizedPage(browser, _save(tmp_path, model, xs, ys, before=before))
    scales = []
    for i in (0, 1):
        page.page.click(f"#bundle-{i}")
        scales.append(page.page.inner_text("#heat-scale"))
    assert scales[0] == scales[1]                   # the same colours mean the same numbers

    def pixel(t, k):
        at = page.page.evaluate(f"explorer.cellCenter({t}, {k})")
        return page.page.evaluate("""([x, y]) => { const c = document.getElementById('heat');
            const f = c.width / c.clientWidth; return Array.from(c.getContext('2d').getImageData(x * f, y * f, 1, 1).data); }""",
                                  [at["x"], at["y"]])
    page.page.click("#bundle-0")                    # W tiny: ‖∂L(8)/∂h(1)‖ ~ 1e-30, far below the scale
    assert pixel(1, 8)[:3] == [255, 255, 255]       # k > t: exactly zero, white
    assert pixel(8, 1)[:3] == [217, 217, 217]       # positive but below the scale: grey
    assert pixel(8, 8)[:3] not in ([255, 255, 255], [217, 217, 217])
    ticks = page.page.evaluate("""() => { const c = document.getElementById('heat');
        return c.getContext('2d').getImageData(0, c.height - 34, c.width, 34).data.some((v, i) => i % 4 === 3 && v > 0); }""")
    assert ticks                                    # the axis below the cells has ticks and labels
    assert page.errors == []
    page.close()


def test_ids_show_as_the_characters_they_stand_for(browser, tmp_path):
    vocab = rnn.Vocab("hello world")
    model = rnn.ElmanRNN(len(vocab), 3, len(vocab), seed=0)
    ids = vocab.encode("hello")
    path = tmp_path / "chars.html"
    viz.explore(model, ids[:-1], ids[1:], symbols=vocab).save(path)
    page = SizedPage(browser, path)
    names = page.page.evaluate("explorer.data.names")
    page.node(_node_id(names, "x", 2)).click()
    assert page.page.inner_text("#info-value") == f'"e" (id {vocab.index["e"]})'
    assert "‖x‖" not in page.page.inner_text("#info")
    assert page.page.locator("#info svg.hist").count() == 0
    assert page.errors == []
    page.close()


@pytest.mark.parametrize("cls, part, shape", [(rnn.BidirectionalRNN, "g", (6, 6)),
                                              (rnn.EncoderDecoder, "h", (4, 6))])
def test_the_heatmap_of_a_non_causal_design_shows_every_part_and_k_after_t(browser, tmp_path, cls,
                                                                          part, shape):
    model = cls(4, 3, 4, seed=1)
    ids = np.random.default_rng(0).integers(0, 4, 6)
    ys = ids if shape[0] == 6 else ids[:4]
    page = SizedPage(browser, _save(tmp_path, model, ids, ys))
    names = page.page.evaluate("explorer.data.names")
    page.page.click(f"#heat-parts button[data-part='{part}']")
    C = rnn.connectivity(model, ids, ys, part=part)
    assert C.shape == shape
    t, k = 1, shape[1]                                  # a loss term and a later step of the part
    assert C[t - 1, k - 1] > 0
    page.page.mouse.move(*_heat_point(page, t, k))
    assert f"/∂{part}({k})‖ = {C[t - 1, k - 1]:.6g}"[:-1] in page.page.inner_text("#heat-label")
    assert _node_id(names, "L", t) in page.titles("hl")
    assert page.errors == []
    page.close()


_SPLIT_NUMBERS = """(sel) => {     // the numbers of a box laid out over two lines (a Range per number)
  const box = document.querySelector(sel), text = box.firstChild, s = text.textContent, out = [];
  for (const m of s.matchAll(/-?[0-9][0-9.e+-]*/g)) {
    const r = document.createRange();
    r.setStart(text, m.index);
    r.setEnd(text, m.index + m[0].length);
    if (new Set(Array.from(r.getClientRects()).map((q) => Math.round(q.top))).size > 1) out.push(m[0]);
  }
  return out;
}"""


@pytest.mark.parametrize("width, height", [(1366, 768), (1920, 1080)])
def test_the_info_panel_shows_whole_numbers_and_whole_histograms(browser, tmp_path, width,
                                                                 height):
    """The value and gradient of h(3) were broken inside numbers (0.152630 shown as "0.15" at
    the end of a line and "2630" on the next, "-" alone before 0.645978), and the histograms,
    300 px wide in a panel of 279, lost their last bar and the end of their upper bound
    ("-0.19177", "1.0778")."""
    model = rnn.ElmanRNN(5, 4, 5, seed=7)
    rng = np.random.default_rng(11)
    path = _save(tmp_path, model, rng.integers(0, 5, 6), rng.integers(0, 5, 6))
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"file://{path}#sel=h,3")
    page.wait_for_function("window.explorer !== undefined")
    page.wait_for_selector("#info-value")
    assert page.evaluate(_SPLIT_NUMBERS, "#info-value") == []
    assert page.evaluate(_SPLIT_NUMBERS, "#info-grad") == []
    spill = page.evaluate("""() => {
      const info = document.querySelector('#info').getBoundingClientRect();
      return Array.from(document.querySelectorAll('#info svg')).map((s) => s.getBoundingClientRect())
        .filter((r) => r.right > info.right - 1).length;
    }""")
    assert page.evaluate("document.querySelectorAll('#info svg').length") == 2
    assert spill == 0
    assert page.evaluate("(e => e.scrollWidth <= e.clientWidth)(document.querySelector('#info'))")
    page.close()


def test_the_connectivity_hint_names_the_state_part_shown(browser, tmp_path):
    """With the bidirectional net's g shown, the hint under the heatmap said "L(t) and h(k)
    light up" (the page's fixed text) while g(k) lit up; it names the part shown, and comes
    back when the pointer leaves the heatmap."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 6)
    page = Page(browser, _save(tmp_path, rnn.BidirectionalRNN(4, 3, 4), ids, ids))
    assert "and h(k) light up" in page.page.inner_text("#heat-label")
    page.page.click("#heat-parts button[data-part='g']")
    assert "and g(k) light up" in page.page.inner_text("#heat-label")
    page.page.hover("#heat", position={"x": 200, "y": 200})
    assert "/∂g(" in page.page.inner_text("#heat-label")
    page.page.mouse.move(5, 5)
    assert "and g(k) light up" in page.page.inner_text("#heat-label")
    assert page.errors == []
    page.close()


@pytest.mark.parametrize("model, xs, ys, words", [
    (rnn.EncoderDecoder(4, 3, 4), [0, 1, 2, 3, 1], [1, 2, 3], "the sum of the 3 loss terms L(1)…L(3)"),
    (rnn.SequenceToOne(4, 3, 2), [0, 1, 2, 3, 1], 1, "the loss term L(5)"),
    (rnn.ElmanRNN(4, 3, 4), [0, 1, 2, 3, 1], [1, 2, 3, 0, 0], "the sum of the 5 loss terms L(1)…L(5)")],
    ids=["encdec", "seq2one", "elman"])
def test_the_header_says_which_loss_terms_the_loss_sums(browser, tmp_path, model, xs, ys, words):
    """The header said "loss L = 5.70550 over 5 steps" for an encoder-decoder of n_x = 5 and
    n_y = 3, whose loss is the sum of its 3 decoder terms; it names the terms it sums (computed
    here as the run's L(t) added up)."""
    run = model.run(np.array(xs), ys if np.ndim(ys) == 0 else np.array(ys))
    page = Page(browser, _save(tmp_path, model, np.array(xs),
                               ys if np.ndim(ys) == 0 else np.array(ys)))
    text = page.page.inner_text("#loss")
    assert text.endswith(words)
    shown = float(text.split("=")[1].split(",")[0])
    assert shown == pytest.approx(sum(loss.item() for loss in run.losses), rel=1e-5)
    assert page.errors == []
    page.close()


def test_the_heatmaps_tick_labels_stand_whole_inside_its_canvas(browser, tmp_path):
    """Over 200 steps the last column tick "200" was centred on the last bin, 2 px from the
    canvas's right edge, and drawn half outside it ("20" and a cut "0"); every tick label of
    either axis now stands whole inside the canvas (read from the page's own fillText calls)."""
    model = rnn.ElmanRNN(4, 3, 4, seed=2)
    rng = np.random.default_rng(0)
    path = _save(tmp_path, model, rng.integers(0, 4, 200), rng.integers(0, 4, 200))
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.add_init_script("""window.__texts = [];
      const fill = CanvasRenderingContext2D.prototype.fillText;
      CanvasRenderingContext2D.prototype.fillText = function (text, x, y) {
        const w = this.measureText(text).width, m = this.getTransform();
        const left = this.textAlign === "center" ? x - w / 2 : this.textAlign === "right" ? x - w : x;
        if (m.a === 1 && m.b === 0 && this.canvas.id === "heat")    // not the rotated axis title
          window.__texts.push([String(text), left, left + w, this.canvas.width]);
        return fill.apply(this, arguments);
      };""")
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"file://{path}")
    page.wait_for_function("window.explorer !== undefined")
    texts = page.evaluate("window.__texts")
    assert "200" in [t[0] for t in texts] and "1" in [t[0] for t in texts]
    assert [t for t in texts if t[1] < 0 or t[2] > t[3]] == []
    assert errors == []
    page.close()


_Y_LABELS = """id => [...document.querySelectorAll('#' + id + ' text[text-anchor=end]')]
    .filter(e => +e.getAttribute('x') < 60).map(e => [e.textContent, +e.getAttribute('y')])"""


def test_a_log_plot_within_one_decade_labels_its_ends(browser, tmp_path):
    """The Jacobian spectra of an Elman network near its edge of chaos run from about 0.6 to
    1.6: the log axis was labelled "1e0" alone (the one power of ten inside), with no scale to
    read a curve by; its ends are labelled with their values, and 1e0 stays between them."""
    model = rnn.ElmanRNN(4, 8, 4, seed=0)
    rng = np.random.default_rng(0)
    path = _save(tmp_path, model, rng.integers(0, 4, 40), rng.integers(0, 4, 40))
    page = Page(browser, path)
    labels = page.page.evaluate(_Y_LABELS, "plot-spectra")
    texts = [text for text, _ in labels]
    assert len(texts) == 3 and "1e0" in texts, labels
    top, bottom = sorted(labels, key=lambda label: label[1])[::2]
    assert float(bottom[0]) < 1 < float(top[0]) < 10, labels
    lag = [text for text, _ in page.page.evaluate(_Y_LABELS, "plot-lag")]
    assert len(lag) == 2 and all(text.startswith("1e") for text in lag), lag   # two decades: powers
    assert page.errors == []
    page.close()


def test_steps_whose_jacobians_are_exactly_zero_keep_their_place_and_the_lag_says_why(browser,
                                                                                   tmp_path):
    """float32 tanh units at exactly ±1: J(11) = J(12) = 0, which a log axis cannot draw.  The
    spectra's x axis ran 1..10 (the points drawn), as if the run had 10 steps; the lag decay
    (every product through J(12) exactly 0) showed 2.2e-308 at every lag and "ρ = 1 per step
    (exploding)"."""
    model = rnn.ElmanRNN(5, 4, 4, seed=1, dtype=np.float32)
    model.W.data *= 30
    model.U.data *= 30
    rng = np.random.default_rng(0)
    page = Page(browser, _save(tmp_path, model, rng.integers(0, 5, 12), rng.integers(0, 4, 12)))
    ends = page.page.evaluate("""[...document.querySelectorAll('#plot-spectra text')]
        .filter(e => e.getAttribute('y') > 100 && /^\\d+$/.test(e.textContent))
        .map(e => e.textContent)""")
    assert ends == ["1", "12"], ends
    assert "ρ = 0: the product of the Jacobians is exactly 0" in page.page.inner_text("#lag-label")
    assert "every product is exactly 0" in page.page.text_content("#plot-lag")
    assert page.errors == []
    page.close()


def test_the_spectra_of_a_shorter_decoder_span_its_own_steps(browser, tmp_path):
    """The decoder's spectra (part s, n_y = 3) beside an encoder of n_x = 7 steps: the x axis
    runs 1..3, the decoder's steps, not 1..7."""
    model = rnn.EncoderDecoder(4, 3, 4, seed=0)
    rng = np.random.default_rng(0)
    page = Page(browser, _save(tmp_path, model, rng.integers(0, 4, 7), rng.integers(0, 4, 3),
                               part="s"))
    ends = page.page.evaluate("""[...document.querySelectorAll('#plot-spectra text')]
        .filter(e => e.getAttribute('y') > 100 && /^\\d+$/.test(e.textContent))
        .map(e => e.textContent)""")
    assert ends == ["1", "3"], ends
    assert page.errors == []
    page.close()


def test_the_plots_of_a_one_step_run_show_their_points_at_step_1(browser, tmp_path):
    """One step: each plot's one point was a path of one point, which draws nothing (three
    panels of bare axes and legends), and the x axis ran 1..2, naming a step the run has not.
    Each lone point is a dot now, on an axis labelled 1 alone."""
    model = rnn.ElmanRNN(4, 5, 4, seed=0)
    page = Page(browser, _save(tmp_path, model, np.array([1]), np.array([2])))
    for plot, dots in (("plot-spectra", 2), ("plot-lag", 2), ("plot-sat", 2)):
        assert page.page.locator(f"#{plot} circle.lone").count() == dots, plot
        steps = page.page.evaluate("""id => [...document.querySelectorAll('#' + id + ' text')]
            .filter(e => e.getAttribute('y') > 100 && /^\\d+$/.test(e.textContent))
            .map(e => e.textContent)""", plot)
        assert steps == ["1"], (plot, steps)
    assert page.errors == []
    page.close()

def test_a_run_without_loss_offers_no_heatmap_cell_to_hover(browser, tmp_path):
    # a system without targets has no connectivity: the panel said "no loss terms or no
    # gradient" under a hint "hover a cell: L(t) and s(k) light up in the graph"
    W = tg.Parameter(np.eye(3) * 0.5, name="W")
    model = rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=3, name="system",
                           state_name="s")
    page = Page(browser, _save(tmp_path, model, None, steps=3, h0=np.ones(3)))
    assert page.page.inner_text("#heat-label") == ""
    # nor an eq. 10.52 ratio: its panel's heading named it over a plot of the saturation alone
    assert page.page.inner_text("#sat-title") == "saturation"
    assert page.errors == []
    page.close()

def test_hovering_a_bin_of_several_steps_says_it_shows_their_largest_entry(browser, tmp_path):
    # 300 steps: 48 sampled rows, 200 column bins of 1 or 2 steps; a bin's label read
    # "‖∂L(t)/∂h(k0–k1)‖ = v", as if v were one gradient's norm over the steps k0..k1: it is
    # the largest ‖∂L(t)/∂h(k)‖ of the bin, and says so
    model, xs, ys = _elman(steps=300)
    page = Page(browser, _save(tmp_path, model, xs, ys))
    heat = page.page.evaluate("explorer.data.bundles[0].diag.connectivity.h")
    t = heat["rows"][-1]
    C = rnn.connectivity(model, xs, ys, rows=[t])[t - 1]
    j = next(j for j in range(200) if heat["col_edges"][j + 1] - heat["col_edges"][j] == 2
             and heat["col_edges"][j] > 250)
    k0, k1 = heat["col_edges"][j] + 1, heat["col_edges"][j + 1]
    page.page.mouse.move(*_heat_point(page, t, k0))
    label = page.page.inner_text("#heat-label")
    assert label == (f"largest ‖∂L(t)/∂h(k)‖ over t = {t}, k = {k0}–{k1}: "
                     f"{max(C[k0 - 1], C[k1 - 1]):.6g}"), label
    assert max(C[k0 - 1], C[k1 - 1]) > min(C[k0 - 1], C[k1 - 1])
    assert page.errors == []
    page.close()


def test_the_op_level_dag_of_a_decoder_step_is_that_chains_step_alone(browser, tmp_path):
    # encoder step 2 and decoder step 2 are not the same time, yet the op-level DAG of s(2)
    # drew both steps' ops in one graph (x, a, h with "h (t-1)" beside s, o, L): each chain's
    # step is its own graph, and a tanh node's numbers are its chain's state
    model = rnn.EncoderDecoder(4, 3, 4, seed=1)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, 5), rng.integers(0, 4, 3)
    page = Page(browser, _save(tmp_path, model, xs, ys))
    names = page.page.evaluate("explorer.data.names")
    run = model.run(xs, ys)
    for name, other in (("s", "h (t-1)"), ("h", "s (t-1)")):
        page.page.uncheck("#ops-toggle")
        page.node(_node_id(names, name, 2)).click()
        page.page.check("#ops-toggle")
        texts = page.page.eval_on_selector_all("#graph g.node text", "els => els.map(e => e.textContent)")
        assert f"{name} (t-1)" in texts and other not in texts, (name, texts)
        count = page.page.locator("#graph g.node").count()
        tanh = [j for j in range(count) if page.node(f"op{j}").count()
                and page.node(f"op{j}").locator("text").first.text_content() == "tanh"]
        assert len(tanh) == 1
        page.node(f"op{tanh[0]}").click()
        state = run.parts[name][1]
        (grad,) = tg.grad(run.loss, [state], retain_graph=True)
        assert float(page.page.inner_text("#info-norm")) == pytest.approx(np.linalg.norm(state.data), rel=1e-5)
        assert float(page.page.inner_text("#info-gnorm")) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
        chain = "decoder" if name == "s" else "encoder"
        assert page.page.inner_text("#info-title").endswith(f"of {chain} step 2")
    assert page.errors == []
    page.close()


def test_a_step_of_another_shape_shows_its_own_shape_and_entries(browser, tmp_path):
    # h(0) given as one (H,) tensor for a batch of 3: the page showed "shape [3,3]" (the
    # variable's shape at its other steps) and its 3 entries followed by '… (6 more)', entries
    # it does not have; its own shape is [3], its norm and gradient that tensor's
    model = rnn.ElmanRNN(4, 3, 4, seed=1)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, (5, 3)), rng.integers(0, 4, (5, 3))
    h0 = tg.tensor(rng.normal(size=3), requires_grad=True)
    page = Page(browser, _save(tmp_path, model, xs, ys, h0=h0), hash_="sel=h,0")
    info = page.page.inner_text("#info")
    assert "shape [3]" in info and "more)" not in page.page.inner_text("#info-value"), info
    (grad,) = tg.grad(model.run(xs, ys, h0=h0).loss, [h0])
    assert float(page.page.inner_text("#info-gnorm")) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    page.page.goto(page.page.url.split("#")[0] + "#sel=h,2")
    page.page.reload()
    page.page.wait_for_function("window.explorer !== undefined")
    assert "shape [3,3]" in page.page.inner_text("#info")
    assert page.errors == []
    page.close()
