"""viz: Graphviz diagrams of what the engine computed.

``folded(model)`` and ``unrolled(model, steps)`` are derived from the model's
own traced unroll (``model.trace``), ``graph(tensor)`` draws the op-level DAG
grouped by scope, ``figure("10.3")`` gives the chapter's figures, and
``save(digraph, "out/fig.svg")`` writes SVG or PNG by suffix, and ``explore(model, xs, ys)``
makes one self-contained interactive page of a real unroll and its gradients, and
``playground(model, task)`` trains a network live in the browser (a local server).
"""

from .derive import Variables, derive
from .explorer import Explorer, explore
from .figures import FIGURES, figure
from .opgraph import gradient_norms, graph
from .playground import Playground, playground
from .render import OutputPathError, RenderError, find_renderer, render, save, use_renderer
from .views import folded, unrolled

__all__ = ["Explorer", "FIGURES", "OutputPathError", "RenderError", "Variables", "derive", "explore", "figure",
           "find_renderer", "folded", "gradient_norms", "graph", "Playground", "playground", "render", "save", "unrolled",
           "use_renderer"]
