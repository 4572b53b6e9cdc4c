"""Every committed image of docs/figures and docs/views is what the current code draws, byte for
byte, so a change of the drawings cannot leave the README's pictures stale.  On a failure,
redraw with the commands that made them (seed 0, 4 steps):

    tinygraph figures --out docs/figures
    tinygraph draw --model MODEL --steps 4 --seed 0 --out SCRATCH   (copy MODEL_folded.svg /
        MODEL_unrolled.svg into docs/views)

The bytes depend on the renderer (graphviz-pure) and matplotlib too: after upgrading either,
a failure here may mean only that; redraw the same way.

(docs/chars_gradient_flow.svg comes from the demo's 12,000 updates: tests/test_readme.py checks
it; docs/playground holds browser screenshots.)"""

import os
import re

import pytest

from viz import figure, folded, save, unrolled
from viz.cli import MODELS

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs")
FIGURES = sorted(os.listdir(os.path.join(DOCS, "figures")))
VIEWS = sorted(os.listdir(os.path.join(DOCS, "views")))


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
    path = save(_drawing(folder, name), str(tmp_path / name), quiet=True)
    with open(path, "rb") as f:
        now = f.read()
    with open(os.path.join(DOCS, folder, name), "rb") as f:
        committed = f.read()
    assert now == committed, (f"docs/{folder}/{name} is stale: the code draws it differently "
                              "now; redraw it as this module's docstring says")


def test_the_docs_hold_every_figure_and_only_svgs():
    assert len(FIGURES) == 18 and all(n.endswith(".svg") for n in FIGURES + VIEWS)
