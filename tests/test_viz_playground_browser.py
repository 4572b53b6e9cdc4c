"""The playground in a real browser (Playwright driving the system's Chromium), the server
started by a fixture on a free port.  Skipped without Chromium or playwright, saying why; under
CI (CI=true) that skip is an error.  The page's CSP forbids eval, so the tests poll with
``page.evaluate`` (which the CSP does not cover) instead of ``wait_for_function``."""

import json
import time

import pytest

import viz
from test_viz_playground import Client

WAIT = 120.0


@pytest.fixture
def app():
    started = viz.playground(hidden=16, delay=5, batch=16, lr=0.02)
    yield started
    started.stop()


class Page:
    def __init__(self, browser, url):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.until("document.body.dataset.version !== undefined", "the first snapshot")

    def until(self, expression, what):
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            value = self.page.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"not within {WAIT:.0f} s: {what}")

    def steps(self):
        return self.page.evaluate("+document.querySelector('.run').dataset.steps")

    def close(self):
        assert self.errors == []
        self.page.close()


def test_play_and_the_loss_falls_on_copy_with_delay_5(browser, app):
    page = Page(browser, app.url)
    page.page.click("#b-play")
    page.until("+document.querySelector('.run').dataset.steps >= 150", "150 updates")
    page.page.click("#b-pause")
    state = Client(app).state()
    losses = [v for _, v in state["runs"][0]["loss"]]
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:5]) / 5
    assert page.page.locator(".run svg.p-loss polyline").count() == 1
    page.close()


def _heat(page):
    return page.page.evaluate("document.querySelector('.heat').toDataURL()")


def test_pause_change_rho_reset_and_the_heatmap_changes(browser, app):
    page = Page(browser, app.url)
    page.page.click("#b-play")
    page.until("+document.querySelector('.run').dataset.steps >= 3", "a few updates")
    page.page.click("#b-pause")
    page.until("document.querySelector('#b-play').classList.contains('on') === false", "paused")
    before = _heat(page)
    page.page.fill("#c-rho", "0.3")
    page.page.dispatch_event("#c-rho", "change")
    page.page.click("#b-reset")
    page.until("+document.querySelector('.run').dataset.steps === 0", "the reset")
    assert Client(app).state()["config"]["rho"] == 0.3
    page.until(f"document.querySelector('.heat').toDataURL() !== {json.dumps(before)}",
               "the heatmap redrawn")
    assert "rho=0.3" in page.page.evaluate("location.hash")
    page.close()


def test_the_hash_restores_the_configuration(browser, app):
    base = app.url.split("#")[0]
    page = Page(browser, base + "#design=gru&task=copy&delay=4&hidden=7&rho=0.8&seed=9&clip=0")
    page.until("document.querySelector('.run-title').textContent.startsWith('gru (7 hidden)')",
               "the run of the hash")
    config = Client(app).state()["config"]
    assert (config["design"], config["hidden"], config["delay"], config["seed"], config["rho"],
            config["clip"]) == ("gru", 7, 4, 9, 0.8, 0.0)
    assert page.page.input_value("#c-hidden") == "7" and page.page.input_value("#c-design") == "gru"
    page.close()


def test_the_link_replays_the_same_run_bit_for_bit(browser, app):
    page = Page(browser, app.url.split("#")[0] + "#hidden=6&delay=3&seed=4&batch=4")
    page.until("document.querySelector('.run-title').textContent.startsWith('elman (6 hidden)')",
               "the run of the hash")
    for _ in range(4):
        page.page.click("#b-step")
        time.sleep(0.05)
    digest = page.until("document.querySelector('.run').dataset.steps === '4' && "
                        "document.querySelector('.run').dataset.digest", "four steps")
    link = page.page.url
    page.page.click("#b-reset")
    page.until("document.querySelector('.run').dataset.steps === '0'", "the reset")
    second = Page(browser, link)
    for _ in range(4):
        second.page.click("#b-step")
        time.sleep(0.05)
    again = second.until("document.querySelector('.run').dataset.steps === '4' && "
                         "document.querySelector('.run').dataset.digest", "four steps again")
    assert again == digest
    page.close()
    second.close()


def test_a_click_on_a_node_shows_its_value_and_gradient_norms(browser, app):
    page = Page(browser, app.url)
    page.until("document.querySelectorAll('.graph g.node').length > 0", "the unrolled view")
    page.page.locator(".graph g.node").first.click()
    text = page.page.inner_text(".info")
    assert "‖value‖ =" in text and "‖∂L/∂" in text
    page.close()


def test_without_the_token_the_page_is_403(browser, app):
    page = browser.new_page()
    response = page.goto(app.url.split("?")[0])
    assert response.status == 403
    page.close()


def test_two_tabs_see_the_same_run(browser, app):
    a, b = Page(browser, app.url), Page(browser, app.url)
    a.page.click("#b-step")
    b.until("document.querySelector('.run').dataset.steps === '1'", "the other tab's step")
    a.close()
    b.close()


_X_TICKS = """[...document.querySelectorAll('.run svg.CHART text.axis[text-anchor=middle]')]
              .map(e => [+e.getAttribute('x'), e.textContent])"""


def test_a_step_axis_labels_distinct_whole_numbers_each_where_it_stands(browser, app):
    """An integer axis put five evenly spaced ticks and labelled each with its rounded value:
    at update 0 the loss axis read -1 0 0 1 1, and the 11 steps of ‖∂L/∂h(t)‖ were labelled
    1 4 6 9 11 at 1, 3.5, 6, 8.5, 11 (a label half a step from its value)."""
    page = Page(browser, app.url)
    page.until("document.querySelectorAll('.run svg.p-dldh polyline').length === 1 && "
               "document.querySelectorAll('.run svg.p-loss circle').length > 0", "the first views")
    for chart in ("p-loss", "p-dldh"):
        ticks = page.page.evaluate(_X_TICKS.replace("CHART", chart))
        values = [int(text) for _, text in ticks]
        assert len(values) >= 3 and len(set(values)) == len(values), (chart, ticks)
        (xa, a), (xb, b) = ticks[0], ticks[-1]
        per_unit = (xb - xa) / (int(b) - int(a))
        for x, text in ticks:
            assert x == pytest.approx(xa + (int(text) - int(a)) * per_unit, abs=0.01), (chart, ticks)
    page.close()


def test_the_last_step_label_of_a_long_run_stays_inside_its_chart(browser, app):
    """The last tick label is centred on the chart's right edge: '1500' of a 1,500-step run ran
    5 px past the SVG and was cut ('150'); a whole-number axis also writes 12000, not 1.20e+4."""
    page = Page(browser, app.url.split("#")[0] + "#task=parity&length=1500&hidden=4&batch=2")
    page.until("document.querySelector('.run-title').textContent.startsWith('elman (4 hidden)') "
               "&& document.querySelectorAll('.run svg.p-dldh polyline').length === 1",
               "the views of a 1,500-step run")
    boxes = page.page.evaluate("""[...document.querySelectorAll(
        '.run svg.p-dldh text.axis[text-anchor=middle]')].map(e => { const r = e.getBBox();
        return [e.textContent, r.x, r.x + r.width, +e.ownerSVGElement.getAttribute('width')]; })""")
    assert boxes[-1][0] == "1500", boxes
    for text, left, right, width in boxes:
        assert 0 <= left and right <= width, boxes
    page.close()


_LABEL_COVERS = """([chart, text]) => {
    const svg = document.querySelector('.run svg.' + chart);
    const label = [...svg.querySelectorAll('text')].find(e => e.textContent === text).getBBox();
    const inside = (x, y) => x >= label.x && x <= label.x + label.width && y >= label.y && y <= label.y + label.height;
    let covered = 0;
    for (const line of svg.querySelectorAll('polyline')) {
        const pts = line.getAttribute('points').split(' ').map(p => p.split(',').map(Number));
        for (let i = 0; i + 1 < pts.length; i++)
            for (let k = 0; k <= 20; k++) {
                const f = k / 20;
                if (inside(pts[i][0] + f * (pts[i + 1][0] - pts[i][0]), pts[i][1] + f * (pts[i + 1][1] - pts[i][1]))) { covered++; break; }
            }
    }
    for (const dot of svg.querySelectorAll('circle'))
        if (inside(+dot.getAttribute('cx'), +dot.getAttribute('cy'))) covered++;
    return covered;
}"""


def test_a_lines_label_and_the_legend_are_put_where_they_cover_no_curve(browser, app):
    """'clip 1' stood at the right end just above its line, where a gradient norm that
    hovers over the threshold runs (the Elman vs LSTM screenshot): the label goes where it
    covers no segment of the curves (here the snapshot's gradient norms hover just above 1 in
    the right half, and the recall's dots sit on the chance line at its right end); the legend
    of a chart goes to the corner where it covers no curve (here the loss stays high on the
    left, where the legend stood)."""
    state = Client(app).state()
    run = state["runs"][0]
    n = 300
    run["config"]["clip"] = 1
    run["gnorm"] = [[k, 300.0 * 0.9 ** k if k < n // 2 else 1.1 + 0.2 * (k % 3)] for k in range(1, n + 1)]
    run["recall"] = [[k * 20, 0.125 + 0.01 * (k % 2)] for k in range(10, 16)]
    run["loss"] = [[k, 2.0 + 0.1 * (k % 2) if k < 200 else 0.3] for k in range(n)]    # high at the left
    run["held"] = [[k, 2.0 if k < 200 else 0.3] for k in range(0, n, 30)]
    state["version"] = 10 ** 6
    page = Page(browser, app.url)
    page.page.route("**/api/state*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(state)))
    page.until("document.querySelector('.run').dataset.steps == " + str(run["steps"]) + " && "
               "(document.querySelector('.run svg.p-gnorm polyline')?.getAttribute('points') || '')"
               ".split(' ').length === 300", "the crafted snapshot drawn")
    assert page.page.evaluate(_LABEL_COVERS, ["p-gnorm", "clip 1"]) == 0
    assert page.page.evaluate(_LABEL_COVERS, ["p-recall", "chance"]) == 0
    for legend in ("training", "held-out"):      # the legend stood at the top left, over the curve
        assert page.page.evaluate(_LABEL_COVERS, ["p-loss", legend]) == 0, legend
    page.close()


def test_the_last_tick_label_stands_clear_of_the_axis_name_below_it(browser, app):
    """'1805' over 'update' and '36' over 't': the tick labels' boxes reached 3 px into the
    axis name's below them (10 px text, baselines 8 px apart); now at least 2 px lie between,
    in every chart, both inside the SVG."""
    state = Client(app).state()
    run = state["runs"][0]
    n = run["steps"] = 1805
    run["loss"] = [[k, 2.0 * 0.99 ** k + 0.2] for k in range(1, n + 1)]
    run["gnorm"] = [[k, 5 * 0.99 ** k + 1] for k in range(1, n + 1)]
    run["held"] = [[k, 2.0 * 0.99 ** k + 0.2] for k in range(0, n + 1, 150)]
    run["recall"] = [[k, 0.125 + k / 3000] for k in range(0, n + 1, 150)]
    state["version"] = 10 ** 6
    page = Page(browser, app.url)
    page.page.route("**/api/state*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(state)))
    page.until("document.querySelector('.run').dataset.steps == '1805' && "
               "document.querySelectorAll('.run svg.p-dldh polyline').length === 1",
               "the crafted snapshot drawn")
    charts = page.page.evaluate("""[...document.querySelectorAll('.run svg')].map(svg => {
        const name = [...svg.querySelectorAll('text')].find(e => e.textContent === 'update' || e.textContent === 't');
        const ticks = [...svg.querySelectorAll('text.xtick')];
        if (!name || !ticks.length) return null;
        const a = ticks[ticks.length - 1].getBBox(), b = name.getBBox();
        return [svg.getAttribute('class'), ticks[ticks.length - 1].textContent, a.y + a.height, b.y,
                b.y + b.height, +svg.getAttribute('height')]; }).filter(c => c)""")
    assert [c[0] for c in charts] == ["p-loss", "p-gnorm", "p-recall", "p-dldh", "p-spectra"]
    assert charts[0][1] == "1805", charts
    for chart, _, tick_bottom, name_top, name_bottom, height in charts:
        assert name_top - tick_bottom >= 2 and name_bottom <= height, charts
    page.close()


def test_the_x_axis_starts_at_the_first_update_even_where_it_has_no_value(browser, app):
    """A point with no value (a gradient norm of 0 on the log axis, a NaN loss sent as null)
    is a gap in the curve, yet it is data: the axis began at the first point it could draw
    (update 11 here), as if the updates before it had not happened."""
    state = Client(app).state()
    run = state["runs"][0]
    n = run["steps"] = 60
    run["gnorm"] = [[k, 0.0 if k <= 10 else 2.0 + k % 3] for k in range(1, n + 1)]
    run["loss"] = [[k, None if k <= 10 else 1.0 / k] for k in range(1, n + 1)]
    run["held"] = [[k, None if k <= 10 else 1.0 / k] for k in range(0, n + 1, 20)]
    state["version"] = 10 ** 6
    page = Page(browser, app.url)
    page.page.route("**/api/state*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(state)))
    page.until("document.querySelector('.run').dataset.steps == '60'", "the crafted snapshot drawn")
    assert page.page.evaluate(_X_TICKS.replace("CHART", "p-gnorm"))[0][1] == "1"
    assert page.page.evaluate(_X_TICKS.replace("CHART", "p-loss"))[0][1] == "0"
    page.close()


def test_a_lone_point_of_a_curve_is_drawn_as_a_dot(browser, app):
    """After the first update the training loss and the gradient norm each had one point: a
    polyline of one point draws nothing, and both charts looked empty."""
    state = Client(app).state()
    run = state["runs"][0]
    run["steps"], run["loss"], run["gnorm"] = 1, [[1, 2.0]], [[1, 3.0]]
    state["version"] = 10 ** 6
    page = Page(browser, app.url)
    page.page.route("**/api/state*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(state)))
    page.until("document.querySelector('.run').dataset.steps == '1'", "the crafted snapshot drawn")
    for chart, colour in (("p-loss", "#999"), ("p-gnorm", "#6a3d9a")):
        dots = page.page.evaluate(f"[...document.querySelectorAll('.run svg.{chart} circle.lone')]"
                                  ".map(c => c.getAttribute('fill'))")
        assert dots == [colour], chart
    page.close()


def test_a_connectivity_of_nan_is_drawn_and_named_as_such_not_as_all_zero(browser):
    """A user's task with a NaN in x(3) of every sequence: ‖∂L(t)/∂h(k)‖ is NaN for t >= 3,
    k <= t, which the heatmap drew white, as 0 (and with every entry NaN labelled "all
    zero"); and the views failed as a whole (rnn.spectra refused the NaN Jacobians), so no
    heatmap was shown at all.  Now the spectra are gaps there and a note says why."""
    import numpy as np

    import rnn

    def task(batch, seed):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(6, batch, 3))
        xs[2] = np.nan
        return xs, rng.integers(0, 2, (6, batch))
    started = viz.playground(rnn.ElmanRNN(3, 4, 2, seed=0), task)
    try:
        page = Page(browser, started.url)
        text = page.until("(t => t !== 'no connectivity' && t)(document.querySelector("
                          "'.heat-scale').textContent)", "the heatmap")
        assert "all zero" not in text and "magenta: NaN or infinite" in text, text
        pixel = page.page.evaluate("""(c => [...c.getContext('2d')
            .getImageData(c.width - 2, c.height - 2, 1, 1).data])(document.querySelector('.heat'))""")
        assert pixel[:3] == [0xe7, 0x29, 0x8a], pixel        # L(6) and h(6): NaN
        notes = page.page.evaluate("document.querySelector('.run .notes').textContent")
        assert "not finite at 4 step(s) (first t=3)" in notes and "views failed" not in notes
        # every ‖∂L/∂h(t)‖ is NaN (so is L): that is no "no data yet"
        assert page.page.evaluate("document.querySelector('.run .p-dldh').textContent") == \
            "no point above 0 (every value NaN, infinite or 0)"
        page.close()
    finally:
        started.stop()


def test_the_page_says_which_update_the_views_show_when_the_curves_went_on(browser, app):
    # the title's update and the curves are published more often than the views: the page
    # showed "update 2" above views of update 0 without a word
    page = Page(browser, app.url)
    page.until("document.querySelector('.views-of').textContent === 'the views below: update 0'",
               "the views of update 0, of the update the title shows")
    engine = app.engine
    engine.stopping.set()
    engine.wake.set()
    engine.thread.join(WAIT)        # stopped: this thread alone updates the run and publishes
    engine.runs[0].update()
    engine.runs[0].update()
    engine._publish(views=False)
    said = page.until("document.querySelector('.run').dataset.steps === '2' && "
                      "document.querySelector('.views-of').textContent", "the curves of update 2")
    assert said.startswith("the views below: update 0 (the curves above: update 2;")
    assert page.page.locator(".run-title").text_content().split(" · ")[2] == "update 2"
    page.close()
