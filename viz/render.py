"""Rendering: finds the Graphviz program, escapes user text for DOT labels and
writes a Digraph to SVG or PNG.

The renderer is the ``graphviz-pure`` command installed beside the Python
interpreter (so an unactivated virtual environment works); the environment
variable ``TINYGRAPH_DOT`` names another ``dot`` program instead.  The
``graphviz`` package is pointed at it through
``graphviz.backend.dot_command.DOT_BINARY``, which is also what Jupyter's inline
display uses, once when viz is imported and when :func:`use_renderer` is called;
:func:`render` and :func:`save` run the renderer themselves and leave that
process-wide setting as it is (a user's own setting stays).  Without any renderer the DOT source (``digraph.source``) is still
available and rendering raises :class:`RenderError` saying how to get one.
"""

import html
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import graphviz
import graphviz.backend.dot_command

from tinygraph.errors import TinygraphError, WriteError
from tinygraph.files import atomic_write

ENV_VAR = "TINYGRAPH_DOT"
FORMATS = ("svg", "png", "plain")
_PNG = b"\x89PNG\r\n\x1a\n"
_INSTALL_HINT = ("install one with `pip install graphviz-pure` (no root needed), or set "
                 f"{ENV_VAR} to the path of a Graphviz `dot` program")


class RenderError(TinygraphError, RuntimeError):
    """Graphviz could not be found or could not render a diagram."""


class OutputPathError(WriteError):
    """A diagram, plot or page could not be written to the path asked for."""


def find_renderer():
    """Path of the Graphviz program to use, or None.

    ``$TINYGRAPH_DOT`` if set (None unless it is an executable file), else ``graphviz-pure`` in the interpreter's
    scripts folder, else ``graphviz-pure`` or ``dot`` on PATH.
    """
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return shutil.which(chosen)
    beside = os.path.join(sysconfig.get_path("scripts"), "graphviz-pure")
    for candidate in (beside, beside + ".exe"):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("graphviz-pure") or shutil.which("dot")


def use_renderer():
    """Point the ``graphviz`` package at the renderer; returns its path.

    Raises
    ------
    RenderError
        If there is no renderer.
    """
    path = _renderer()
    graphviz.backend.dot_command.DOT_BINARY = path
    return path


def _renderer():
    """:func:`find_renderer`'s path, or RenderError saying why there is none.  (``render``
    runs it itself: the ``graphviz`` package's setting, process-wide, is left as it is.)"""
    path = find_renderer()
    if path is None:
        wanted = os.environ.get(ENV_VAR)
        if not wanted:
            where = "no Graphviz renderer found"
        elif os.path.isfile(wanted) or os.path.isfile(shutil.which(wanted, mode=os.F_OK) or ""):
            where = f"{ENV_VAR}={wanted!r} is not executable (chmod +x it, or point at another dot)"
        else:
            where = f"{ENV_VAR}={wanted!r} does not exist"
        raise RenderError(f"viz: {where}; {_INSTALL_HINT}. The DOT text is still available "
                          "as digraph.source")
    return path


def render(digraph, fmt="svg", quiet=False):
    """Render ``digraph`` to bytes in ``fmt`` ("svg", "png", or "plain": Graphviz's text of node
    positions and edge splines, what layout tests read); a matplotlib Figure (the chapter's
    plotted figures) is drawn by matplotlib (svg or png).

    What the renderer writes to stderr is passed on to ``sys.stderr`` line by line, but for
    its one known warning "no value for width of non-ASCII character": Graphviz's own text
    width tables hold ASCII only, so a label with α, ×, ∂ or a superscript gets the width of
    spaces for those bytes (close for these labels: the layout tests measure them), and the
    warning said nothing a user could act on (``make demo`` printed it).  ``quiet`` keeps
    every warning off stderr; a failure still raises RenderError with what the renderer said.
    """
    if fmt not in FORMATS:
        raise RenderError(f"viz: unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    if _is_plot(digraph):
        if fmt == "plain":
            raise RenderError("viz: a matplotlib figure has no plain layout; use svg or png")
        from .plots import figure_bytes
        return figure_bytes(digraph, fmt)
    program = _renderer()
    command = [program, f"-K{digraph.engine}", f"-T{fmt}"]     # as digraph.pipe runs it
    try:
        done = subprocess.run(command, input=digraph.source.encode(digraph.encoding or "utf-8"),
                              capture_output=True, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        raise RenderError(f"viz: the renderer {program!r} could not be run: "
                          f"{getattr(e, 'strerror', None) or e}; {_INSTALL_HINT}") from None
    said = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RenderError(f"viz: the renderer failed on this diagram: "
                          f"{said.strip() or f'exit status {done.returncode}'}") from None
    if not quiet:
        _pass_on(said)
    out = done.stdout
    if not out.strip() or (fmt == "svg" and b"<svg" not in out) or (fmt == "png" and
                                                                     not out.startswith(_PNG)) \
            or (fmt == "plain" and not out.startswith(b"graph ")):
        raise RenderError(f"viz: the renderer {program!r} exited without error but wrote "
                          f"{'no output' if not out.strip() else f'no {fmt.upper()} ({len(out)} bytes)'}; "
                          f"is it a Graphviz dot? {_INSTALL_HINT}")
    if fmt == "svg":            # an SVG is UTF-8 text: every reader of it decodes it so
        try:
            out.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RenderError(f"viz: the renderer {program!r} wrote an SVG that is not UTF-8 "
                              f"text (byte {out[e.start:e.start + 1]!r} at offset {e.start} of "
                              f"{len(out)}); is it a Graphviz dot? {_INSTALL_HINT}") from None
    return out


_WIDTH_WARNING = re.compile(r"^(Warning: )+no value for width of non-ASCII character \d+\. "
                            r"Falling back to width of space character$")


def _pass_on(said):
    """Write the renderer's stderr text ``said`` to ``sys.stderr``, but for its warning that a
    non-ASCII character's width is that of a space (see :func:`render`)."""
    kept = [line for line in said.splitlines(keepends=True)
            if not _WIDTH_WARNING.match(line.rstrip("\r\n"))]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


def _is_plot(figure):
    """A matplotlib Figure (anything with ``savefig``) rather than a Digraph."""
    return callable(getattr(figure, "savefig", None))


def save(digraph, path, quiet=False):
    """Write ``digraph`` to ``path``; the format is the suffix (.svg, .png, .plain for
    Graphviz's layout text, or .dot/.gv for the source).

    ``quiet`` keeps every renderer warning off stderr, as for :func:`render` (which drops only
    the width guess for a non-ASCII character unless quiet).

    A matplotlib Figure (figures 10.15 and 10.17) is written as SVG or PNG the same way.

    Parent folders are created; the file is written atomically (``tinygraph.atomic_write``), so
    a failed write leaves what was there before.  Returns ``path``.

    Raises
    ------
    RenderError
        Unknown suffix, or no renderer.
    OutputPathError
        The file cannot be written.
    """
    fmt = os.path.splitext(str(path))[1].lstrip(".").lower()
    if fmt in ("dot", "gv") and not _is_plot(digraph):
        data = digraph.source.encode()
    elif fmt in FORMATS:
        data = render(digraph, fmt, quiet=quiet)
    elif _is_plot(digraph):      # a matplotlib figure has no DOT source, nor a plain layout
        raise RenderError(f"viz.save: a matplotlib figure is written as .svg or .png, not "
                          f"{str(path)!r}")
    else:
        raise RenderError(f"viz.save: cannot tell the format of {str(path)!r}; "
                          "use a .svg, .png, .plain or .dot suffix")
    with atomic_write(path, "viz.save", OutputPathError, make_folder=True) as f:
        f.write(data)
    return path


def printable(text):
    """``text`` as a line for stdout: a path's bytes that are not UTF-8 (held as the lone
    surrogates of ``os.fsdecode``) written as ``\\xfe``, so that printing it cannot raise
    UnicodeEncodeError where stdout is strict UTF-8 (a UTF-8 locale: the command wrote its
    files, then died on the line naming them)."""
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:            # a surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


_VISIBLE = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(char):
    if char in _VISIBLE:
        return _VISIBLE[char]
    if 0xD800 <= ord(char) <= 0xDFFF:      # a lone surrogate: UTF-8 cannot hold it
        return "\ufffd"
    return f"\\x{ord(char):02x}"


_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def html_text(text):
    """``text`` escaped for an HTML-like label: ``< > & "`` and ``'`` shown as text, and what a
    label cannot show drawn visibly instead of dropped or crashing the renderer: a newline as
    ``\\n`` (also ``\\r``, ``\\t``), another control character as ``\\x01``, a lone
    surrogate as U+FFFD."""
    return html.escape(_INVISIBLE.sub(lambda m: _visible(m.group()), str(text)), quote=True)


def sup_html(name, sup, point_size=10, below=None):
    """HTML-like label of ``name`` with the superscript ``sup`` in a smaller font, e.g. h⁽ᵗ⁾.

    The superscript is the top-aligned second cell of a borderless table rather than
    ``<sup>``: Graphviz writes ``<sup>`` to SVG as ``baseline-shift="super"`` on a
    ``<text>`` element, which browsers ignore (and the PNG renderer too), so the ``(t)``
    sat on the baseline like a subscript.  A table cell is placed by the layout itself
    and looks the same in every viewer.  ``below`` (HTML-like text) adds a second line
    under both.  Wrap the result in ``<...>`` to use it as a label.
    """
    rows = (f'<tr><td valign="bottom" align="right">{html_text(name)}</td>'
            f'<td valign="top" align="left"><font point-size="{point_size}">{html_text(sup)}'
            f'</font></td></tr>')
    if below is not None:           # the two cells align inwards, so a wider line stays tight
        rows += f'<tr><td colspan="2">{below}</td></tr>'
    return f'<table border="0" cellborder="0" cellspacing="0" cellpadding="0">{rows}</table>'


def _point_at_renderer_if_any():
    """At import: let Jupyter's inline display (``_repr_mimebundle_``) use the renderer."""
    path = find_renderer()
    if path is not None:
        graphviz.backend.dot_command.DOT_BINARY = path


_point_at_renderer_if_any()
