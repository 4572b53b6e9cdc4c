"""Writing diagrams: format from the suffix, the renderer chosen by TINYGRAPH_DOT,
clear errors without a renderer or with an unwritable path, inline display."""

import os
import stat
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz


@pytest.fixture
def digraph():
    return viz.figure("10.8")


def test_save_writes_svg_png_or_dot_by_suffix(tmp_path, digraph):
    svg = viz.save(digraph, tmp_path / "a" / "fig.svg")
    png = viz.save(digraph, tmp_path / "fig.png")
    dot = viz.save(digraph, tmp_path / "fig.dot")
    assert open(svg, "rb").read().lstrip().startswith(b"<?xml")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert open(dot).read() == digraph.source


def test_unknown_suffix_is_a_render_error(tmp_path, digraph):
    with pytest.raises(viz.RenderError, match=r"\.svg, \.png"):
        viz.save(digraph, tmp_path / "fig.pdf")


def test_a_plot_saved_as_dot_is_told_its_formats(tmp_path):
    # a matplotlib figure (10.15) saved as .dot was told to "use a .svg, .png or .dot suffix"
    with pytest.raises(viz.RenderError, match=r"a matplotlib figure is written as \.svg or \.png"):
        viz.save(viz.figure("10.15"), str(tmp_path / "f.dot"))
    assert not (tmp_path / "f.dot").exists()

def test_unwritable_path_is_an_os_error_naming_the_path(tmp_path, digraph):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(viz.OutputPathError, match="file") as info:
        viz.save(digraph, blocker / "fig.svg")
    assert isinstance(info.value, OSError) and isinstance(info.value, tg.TinygraphError)


def test_default_renderer_is_graphviz_pure_beside_the_interpreter(monkeypatch):
    monkeypatch.delenv("TINYGRAPH_DOT", raising=False)
    expected = os.path.join(sysconfig.get_path("scripts"), "graphviz-pure")
    assert viz.find_renderer() == expected


def test_tinygraph_dot_picks_the_renderer(monkeypatch, tmp_path, digraph):
    real = os.path.join(sysconfig.get_path("scripts"), "graphviz-pure")
    wrapper = tmp_path / "my-dot"
    marker = tmp_path / "called"
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("TINYGRAPH_DOT", str(wrapper))
    out = viz.render(digraph, "svg")
    assert b"<svg" in out and marker.exists()


def test_missing_renderer_is_a_clear_error_and_the_source_is_still_available(monkeypatch, digraph):
    monkeypatch.setenv("TINYGRAPH_DOT", "/nonexistent/dot")
    with pytest.raises(viz.RenderError, match="pip install graphviz-pure"):
        viz.render(digraph, "svg")
    assert digraph.source.startswith("digraph")


def test_digraphs_display_inline_in_jupyter(digraph):
    viz.use_renderer()
    bundle = digraph._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


def test_importing_viz_points_the_graphviz_package_at_the_renderer(monkeypatch):
    monkeypatch.delenv("TINYGRAPH_DOT", raising=False)
    code = "import viz, graphviz.backend.dot_command as d; print(d.DOT_BINARY)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == os.path.join(sysconfig.get_path("scripts"), "graphviz-pure")


def test_time_superscripts_are_raised_by_the_layout_not_by_baseline_shift(tmp_path):
    # browsers (and the PNG renderer) ignore baseline-shift on an SVG <text>, which is how
    # Graphviz writes <sup>: the (t) of h(t) would sit on the baseline like a subscript
    import xml.etree.ElementTree as ET
    svg = viz.save(viz.figure("10.3"), tmp_path / "fig.svg").read_text()
    assert "baseline-shift" not in svg
    ns = "{http://www.w3.org/2000/svg}"
    raised = 0
    for g in ET.fromstring(svg).iter(f"{ns}g"):
        texts = g.findall(f"{ns}text")
        if g.get("class") == "node" and len(texts) == 2 and texts[1].text.startswith("("):
            name, sup = texts
            assert float(sup.get("font-size")) < float(name.get("font-size"))
            assert float(sup.get("y")) < float(name.get("y")) - 3     # SVG y grows downwards
            raised += 1
    assert raised >= 12     # x, h, o, L, y at t-1, t, t+1 and the h(...) ends


@pytest.mark.parametrize("name,shown", [("W\nnext", "W\\nnext"), ("W\x01", "W\\x01"),
                                        ("W\ud800", "W\ufffd"), ("W\tx", "W\\tx"),
                                        ("W\x7f", "W\\x7f")],
                         ids=["newline", "control", "lone_surrogate", "tab", "delete"])
def test_names_that_a_label_cannot_show_are_drawn_visibly_escaped(tmp_path, name, shown):
    W = tg.Parameter(np.eye(3) * 0.5, name=name)
    cell = rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W], n_state=3, name="sys" + name,
                          state_name="s" + name)
    for view in (viz.folded(cell), viz.unrolled(cell, steps=2), viz.graph(cell.trace(2)[0])):
        svg = viz.save(view, tmp_path / "v.svg").read_text(encoding="utf-8")
        assert "s" + shown in svg and shown in svg
        assert viz.save(view, tmp_path / "v.dot").read_text(encoding="utf-8").count(shown) > 0


def test_the_renderers_width_warning_for_non_ascii_text_is_not_passed_on(capfd, tmp_path):
    """``make demo`` printed "Warning: Warning: no value for width of non-ASCII character 206.
    Falling back to width of space character" (the renderer's width tables hold ASCII only:
    α, ×, ∂ and the like get the width of spaces, close for these labels).  That one warning
    is dropped; the drawing is the renderer's own, byte for byte."""
    import graphviz
    digraph = graphviz.Digraph()
    digraph.node("a", label="<α(t) × ∂L/∂h>")
    digraph.node("b", label="h ×194")
    svg = viz.render(digraph, "svg")
    viz.save(digraph, tmp_path / "fig.svg")
    assert capfd.readouterr().err == ""
    assert "α(t) × ∂L/∂h" in svg.decode() and svg == viz.render(digraph, "svg", quiet=True)
    said = subprocess.run([viz.find_renderer(), "-Tsvg"], input=digraph.source.encode(),
                          capture_output=True).stderr.decode()
    assert "no value for width of non-ASCII character" in said     # what is dropped


def test_the_renderers_other_warnings_still_reach_stderr(capfd):
    """Only that one warning is dropped: another (an unknown shape) is passed on whole, beside
    the width warning of the same drawing; ``quiet`` keeps every warning off stderr."""
    import graphviz
    digraph = graphviz.Digraph()
    digraph.node("a", label="<α>", shape="nosuchshape")
    viz.render(digraph, "svg")
    err = capfd.readouterr().err
    assert "unknown shape nosuchshape" in err and "non-ASCII" not in err
    viz.render(digraph, "svg", quiet=True)
    assert capfd.readouterr().err == ""


def test_rendering_leaves_the_graphviz_packages_setting_as_the_user_set_it(monkeypatch, digraph):
    # render() pointed graphviz.backend.dot_command.DOT_BINARY (process-wide) at its renderer
    # on every call, though it runs the renderer itself: a user's own setting was replaced
    import pathlib

    import graphviz.backend.dot_command as dot_command
    monkeypatch.setattr(dot_command, "DOT_BINARY", pathlib.Path("the-users-own-dot"))
    assert b"<svg" in viz.render(digraph, "svg")
    assert dot_command.DOT_BINARY == pathlib.Path("the-users-own-dot")
    viz.use_renderer()          # asked for: the package then uses the renderer
    assert dot_command.DOT_BINARY == viz.find_renderer()
