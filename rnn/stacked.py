"""Layers and directions of ElmanRNN, LSTM and GRU (``layers=``, ``bidirectional=``), as
PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` stack them.

Layer 1 reads x(t); layer l > 1 reads the states of layer l - 1 at the same step (both
directions concatenated, forward first).  With ``bidirectional`` every layer has a second chain
run backward in time (figure 10.11), each of its nodes in the scope of its real step t.  The
output is o(t) = c + V [h_L(t); h_L_r(t)] (the top layer's two directions concatenated, then V
and c, as torch's output feeds its head).  Each chain is a :class:`~rnn.core.Chain` of the model
over that layer's parameters, named with the layer and direction suffix (``W2``, ``W2_r``, ...;
see :func:`suffix`); the layer of the ``x`` leaves is shared by the two directions of layer 1.
"""

import functools

import tinygraph as tg

from . import checks, replay
from .core import Chain, output_and_loss, step_leaves, unroll
from .plan import Plan


def suffix(layers, layer, reverse):
    """What names layer ``layer`` (1-based) and its direction: the layer's number when there are
    several ("2"), and "_r" for the chain backward in time: "", "_r", "1", "1_r", "2", ..."""
    return ("" if layers == 1 else str(layer)) + ("_r" if reverse else "")


def configure(model, layers, bidirectional, who):
    """Check and set ``layers`` and ``bidirectional``; returns the (suffix, input width) of every
    chain in order.  A model with one forward layer keeps the class defaults (its book names)."""
    layers = checks.positive_int(layers, who, "layers")
    if not isinstance(bidirectional, (bool,)) and not (
            hasattr(bidirectional, "dtype") and bidirectional.dtype == bool):
        raise tg.ConfigError(f"{who}: bidirectional must be True or False, got {bidirectional!r}")
    bidirectional = bool(bidirectional)
    if layers > 1 or bidirectional:
        model.layers, model.bidirectional = layers, bidirectional
        if bidirectional:
            model.causal = False
    directions = (False, True) if bidirectional else (False,)
    chains = []
    for layer in range(1, layers + 1):
        for reverse in directions:
            chains.append((suffix(layers, layer, reverse), layer))
    return chains


def top_parts(model):
    """The output part of every direction of the top layer, forward first."""
    directions = (False, True) if model.bidirectional else (False,)
    return [f"h{suffix(model.layers, model.layers, r)}" for r in directions]


def run(model, seq, steps, batch, keep, ys, state0, per_step):
    """Unroll every layer's chains in turn, then o(t) and L(t) from the top layer (arguments as
    :meth:`rnn.core.Cell.unroll`, already checked)."""
    directions = (False, True) if model.bidirectional else (False,)
    with model.transposes():
        below = seq["x"]
        if per_step and model.bidirectional:      # one x(t) leaf per step, read by both chains
            with tg.scope(model.name):
                below = step_leaves(below, "x", steps)
        history, last = {}, {}
        for layer in range(1, model.layers + 1):
            outs = []
            for reverse in directions:
                k = suffix(model.layers, layer, reverse)
                parts = model._layer_parts(k)
                chain = Chain(model, parts, functools.partial(model._layer_step, k=k),
                              functools.partial(_layer_input, model, k), names_inputs=layer == 1)
                unrolled = chain.unroll(Plan({"x": below}, steps, {p: state0[p] for p in parts},
                                             keep=keep, batch=batch, reverse=reverse),
                                        per_step)
                history.update(unrolled.parts)
                last.update(unrolled.last)
                outs.append(history[f"h{k}"])
            if layer < model.layers:
                below = _joined(model, outs, steps, per_step)
        top = {name: history[name] for name in top_parts(model)}
        if not per_step and ys is not None:
            with tg.scope(model.name):
                loss = model.batched_loss(top, ys, keep, batch)
            return model._result(history, last, None, loss)
        with tg.scope(model.name):
            def outputs(t, _):
                state = {name: nodes[t - 1] for name, nodes in top.items()}
                return None, output_and_loss(model.readout, state,
                                             None if ys is None else ys[t - 1],
                                             None if keep is None else keep[t - 1], batch,
                                             model.criterion)
            _, named = unroll(outputs, None, steps)
        return model._result({**history, **named}, last, None)


def _layer_input(model, k, inputs):
    return model._layer_input(inputs["x"], k)


def _joined(model, outs, steps, per_step):
    """The next layer's input: the directions' states side by side, per step (each node in the
    scope of its step) or for all steps at once (T, ..., D H)."""
    if not per_step:
        stacked = [replay.stacked(nodes) for nodes in outs]
        return stacked[0] if len(stacked) == 1 else tg.concat(stacked, axis=-1)
    if len(outs) == 1:
        return list(outs[0])
    joined = []
    with tg.scope(model.name):
        for t in range(1, steps + 1):
            with tg.scope(f"t={t}"):
                joined.append(tg.concat([nodes[t - 1] for nodes in outs], axis=-1))
    return joined
