"""viz.page.Page, the demo's summary page: a table of contents whose links resolve, sections with
anchors, every figure captioned and shown at one scale (never shrunk to fit)."""

import pathlib
import re
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from viz import FIGURES
from viz.page import FIGURE_CAPTIONS, PX_PER_PT, Page, anchor, figure_caption, image_size

SVG = "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}'></svg>"


def _write_svg(folder, name, w, h):
    (folder / name).write_text(SVG.format(w=w, h=h))
    return name


def test_a_figure_without_a_caption_is_refused():
    with pytest.raises(ValueError, match="'a.svg' in section 'Views' has no caption"):
        Page("t").figures("Views", [("a.svg", "  ")])


def test_sections_with_the_same_heading_get_distinct_anchors():
    taken = []
    for heading in ("Loss curve", "Loss curve", "loss: curve!"):
        taken.append(anchor(heading, taken))
    assert taken == ["loss-curve", "loss-curve-2", "loss-curve-3"]


def test_contents_link_every_section_by_its_anchor(tmp_path):
    page = Page("t")
    page.text("One", "a")
    page.table("Two", [(1, 2)], header=("x", "y"))
    page.section("One").text("again")
    text = open(page.write(str(tmp_path))).read()
    toc = re.search(r"<nav class='toc' id='contents'>(.*?)</nav>", text, re.S).group(1)
    targets = re.findall(r"href='#([^']+)'", toc)
    assert targets == re.findall(r"<section id='([^']+)'>", text) == ["one", "two", "one-2"]


@pytest.mark.parametrize("declared, points", [("432pt", 432), ("96px", 72), ("2in", 144)])
def test_images_are_shown_at_one_scale_of_their_declared_size(tmp_path, declared, points):
    _write_svg(tmp_path, "a.svg", declared, declared)
    page = Page("t")
    page.figures("F", [("a.svg", "a square")])
    text = open(page.write(str(tmp_path))).read()
    assert image_size(str(tmp_path / "a.svg")) == (points, points)
    side = round(points * PX_PER_PT)
    assert f"<img src='a.svg' width='{side}' height='{side}'" in text


def test_every_chapter_figure_has_a_caption_naming_its_section():
    assert set(FIGURE_CAPTIONS) == set(FIGURES)
    for number in FIGURES:
        assert re.fullmatch(rf"Figure {re.escape(number)} \(§10\.[\d.]+\): .{{20,}}\.",
                            figure_caption(number)), number


@pytest.mark.parametrize("width", [1024, 1280])
def test_no_contents_entry_is_split_between_two_columns(browser, tmp_path, width):
    """At 1024 px the demo's seventh entry, 'Long delays: Elman, LSTM and GRU on the copy task
    (300 updates each)', ended its column with '(300' and went on at the top of the next."""
    page = Page("t")
    for k in range(1, 10):
        page.text(f"Section {k}" if k != 7 else "Long delays: Elman, LSTM and GRU on the copy "
                  "task (300 updates each)", "text")
    path = page.write(str(tmp_path))
    tab = browser.new_page(viewport={"width": width, "height": 768})
    try:
        tab.goto(pathlib.Path(path).resolve().as_uri())
        columns = tab.evaluate("""[...document.querySelectorAll('nav.toc li')].map(li =>
            new Set([...li.getClientRects()].map(r => Math.round(r.left))).size)""")
    finally:
        tab.close()
    assert columns == [1] * 9, columns


def test_a_diagram_scaled_down_to_fit_a_screen_is_shown_at_the_one_scale(tmp_path):
    """viz.views.new_digraph scales a drawing larger than a 1920 x 1080 screen down to fit (the
    renderer's ``size``); the page undoes that scale, so its labels stay 18 px high like every
    other image's (it showed such a diagram at the shrunk size it declares)."""
    from viz.render import render
    from viz.views import new_digraph

    def chain(fit):
        g = new_digraph("wide", fit=fit)
        g.attr(rankdir="LR")
        for k in range(40):
            g.node(f"n{k}", f"h({k})")
            if k:
                g.edge(f"n{k - 1}", f"n{k}", "W")
        return render(g)

    (tmp_path / "fit.svg").write_bytes(chain(True))
    (tmp_path / "natural.svg").write_bytes(chain(False))
    declared = ElementTree.parse(tmp_path / "fit.svg").getroot().get("width")
    assert float(declared.removesuffix("pt")) <= 1440, "the drawing was not scaled to fit"
    natural = image_size(str(tmp_path / "natural.svg"))
    assert natural[0] > 1440
    # (the renderer rounds the scaled size to whole points: 23 pt over s = 0.3 is within 3 pt)
    np.testing.assert_allclose(image_size(str(tmp_path / "fit.svg")), natural, atol=4)
    page = Page("t")
    page.figures("F", [("fit.svg", "a long chain")])
    text = open(page.write(str(tmp_path))).read()
    width = int(re.search(r"<img src='fit.svg' width='(\d+)'", text).group(1))
    assert abs(width - natural[0] * PX_PER_PT) <= 4
