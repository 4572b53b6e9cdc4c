"""Every committed image of docs/figures and docs/views is what the current code draws, byte for
byte, so a change of the drawings cannot leave the README's pictures stale.  On a failure,
redraw with the commands that made them (seed 0, 4 steps):

    tinygraph figures --out docs/figures
    tinygraph draw --model MODEL --steps 4 --seed 0 --out SCRATCH   (copy MODEL_folded.svg /
        MODEL_unrolled.svg into docs/views)

The bytes depend on the renderer too: with the graphviz-pure release that drew the committed
files (DREW_WITH) they must be equal; with another release, the drawing's content must be (every
node and edge, the SVG's titles, and every text with its font, in order), so a fresh install of a
newer graphviz-pure still checks the drawings.  With a ``dot`` of the user's own (TINYGRAPH_DOT),
whose version and fonts may differ, the comparison is skipped, saying so.

(docs/chars_gradient_flow.svg comes from the demo's 12,000 updates: tests/test_readme.py checks
it; docs/playground holds browser screenshots.)"""

import importlib.metadata
import os
import re

import pytest

from viz import figure, folded, save, unrolled
from viz.cli import MODELS

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")
FIGURES = sorted(os.listdir(os.path.join(DOCS, "figures")))
VIEWS = sorted(os.listdir(os.path.join(DOCS, "views")))
DREW_WITH = "0.2.2"     # the graphviz-pure release that drew the committed files


def _same_renderer():
    """Whether drawings are rendered here by the graphviz-pure release that drew the committed
    files (False: by another release)."""
    try:
        return importlib.metadata.version("graphviz-pure") == DREW_WITH
    except importlib.metadata.PackageNotFoundError:
        return False


def _content(svg):
    """What a drawing says, whatever lays it out: its titles (graph, nodes, edges) and texts
    with their fonts (not where the renderer put them)."""
    text = svg.decode("utf-8")
    return (re.findall(r"<title>(.*?)</title>", text, re.S),
            [(re.sub(r'\s(x|y)="[^"]*"', "", attrs).strip(), words.strip())
             for attrs, words in re.findall(r"<text\b([^>]*)>(.*?)</text>", text, re.S)])


def _drawing(folder, name):
    if folder == "figures":
        number = re.fullmatch(r"fig(\d+)_(\d+)\.svg", name)
        assert number, f"docs/figures/{name} is not a figure fig10_N.svg"
        return figure(f"{number[1]}.{number[2]}")
    parts = re.fullmatch(r"(\w+?)_(folded|unrolled)\.svg", name)
    assert parts and parts[1] in MODELS, f"docs/views/{name} is not MODEL_folded/unrolled.svg"
    model = MODELS[parts[1]](0)
    return folded(model) if parts[2] == "folded" else unrolled(model, steps=4)


@pytest.mark.parametrize("folder, name", [("figures", n) for n in FIGURES]
                         + [("views", n) for n in VIEWS])
def test_a_committed_image_is_what_the_code_draws_now(folder, name, tmp_path):
    if os.environ.get("TINYGRAPH_DOT"):
        pytest.skip("TINYGRAPH_DOT names a dot of your own: the committed images were drawn by "
                    f"graphviz-pure {DREW_WITH}, whose layout and fonts yours need not share")
    path = save(_drawing(folder, name), str(tmp_path / name), quiet=True)
    with open(path, "rb") as f:
        now = f.read()
    with open(os.path.join(DOCS, folder, name), "rb") as f:
        committed = f.read()
    stale = (f"docs/{folder}/{name} is stale: the code draws it differently now; redraw it "
             "as this module's docstring says")
    if _same_renderer():
        assert now == committed, stale
    else:
        assert _content(now) == _content(committed), stale


def test_the_content_compared_under_another_renderer_sees_a_changed_label():
    """The weaker comparison (another renderer) still catches a drawing that says something
    else: a weight's label, a node left out."""
    with open(os.path.join(DOCS, "views", "gru_unrolled.svg"), "rb") as f:
        svg = f.read()
    assert _content(svg) == _content(svg.replace(b"translate(4 548.27)", b"translate(9 9)"))
    assert _content(svg) != _content(svg.replace(b">Wr<", b">Wu<", 1))
    assert _content(svg)[0] and _content(svg)[1]


def test_the_docs_hold_every_figure_and_only_svgs():
    assert len(FIGURES) == 18 and all(n.endswith(".svg") for n in FIGURES + VIEWS)
