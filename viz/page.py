"""The demo's summary page: one static ``index.html`` that shows the figures,
diagrams and plots written beside it (by relative links, so it opens from disk
with no server) and the text results (losses, gradient check, samples).
"""

import html
import os

from tinygraph.files import atomic_write

from .render import OutputPathError

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure { margin: 0; border: 1px solid #e4e4e4; border-radius: 6px; padding: 0.6em; background: #fff; }
figure img { max-width: 100%; max-height: 420px; display: block; margin: auto; }
figcaption { font-size: 0.9em; color: #555; margin-top: 0.4em; text-align: center; }
pre { background: #f6f6f6; padding: 0.8em; border-radius: 6px; white-space: pre-wrap; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
"""


class Page:
    """Collects sections, then writes them as one HTML file.

    Images are referred to by paths relative to the page's folder; ``write``
    refuses to produce a page with a link to a file that does not exist.
    """

    def __init__(self, title, intro=""):
        self.title = title
        self.intro = intro
        self.sections = []

    def figures(self, heading, items, text=""):
        """A section of images: ``items`` is a list of (relative path, caption)."""
        self.sections.append(("figures", heading, text, list(items)))

    def link_list(self, heading, items, text=""):
        """A section of links to pages written beside this one: (relative path, caption)."""
        self.sections.append(("links", heading, text, list(items)))

    def text(self, heading, body, preformatted=False):
        self.sections.append(("pre" if preformatted else "text", heading, body, None))

    def table(self, heading, rows, header=None):
        """A section with a table: ``rows`` of cells, under an optional ``header`` row."""
        self.sections.append(("table", heading, header, [list(r) for r in rows]))

    def links(self):
        return [path for kind, _, _, items in self.sections if kind in ("figures", "links")
                for path, _ in items]

    def write(self, folder, name="index.html"):
        """Write the page into ``folder`` (atomically) and return its path."""
        missing = [p for p in self.links() if not os.path.isfile(os.path.join(folder, p))]
        if missing:
            raise FileNotFoundError(f"page: linked files are missing from {folder}: {missing}")
        esc = html.escape
        out = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
               f"<title>{esc(self.title)}</title><style>{_STYLE}</style></head><body>",
               f"<h1>{esc(self.title)}</h1>"]
        if self.intro:
            out.append(f"<p>{esc(self.intro)}</p>")
        for kind, heading, body, items in self.sections:
            out.append(f"<h2>{esc(heading)}</h2>")
            if kind == "figures":
                if body:
                    out.append(f"<p>{esc(body)}</p>")
                out.append("<div class='grid'>")
                for path, caption in items:
                    out.append(f"<figure><a href='{esc(path)}'><img src='{esc(path)}' "
                               f"alt='{esc(caption)}'></a><figcaption>{esc(caption)}</figcaption></figure>")
                out.append("</div>")
            elif kind == "links":
                if body:
                    out.append(f"<p>{esc(body)}</p>")
                out.append("<ul>" + "".join(f"<li><a href='{esc(path)}'>{esc(caption)}</a></li>"
                                            for path, caption in items) + "</ul>")
            elif kind == "pre":
                out.append(f"<pre>{esc(body)}</pre>")
            elif kind == "table":
                out.append("<table>")
                if body:
                    out.append("<tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in body) + "</tr>")
                for row in items:
                    out.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>")
                out.append("</table>")
            else:
                out.append(f"<p>{esc(body)}</p>")
        out.append("</body></html>\n")
        path = os.path.join(folder, name)
        with atomic_write(path, "page", OutputPathError) as f:
            f.write("\n".join(out).encode("utf-8"))
        return path
