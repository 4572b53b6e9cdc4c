"""From and to PyTorch: ``rnn.from_torch(module, head)`` and ``model.to_torch()``.

torch is optional: it is imported only inside :func:`from_torch` and :func:`to_torch`.  The
weight mapping itself is numpy (:func:`from_arrays`, :func:`torch_arrays`), so it is checked
without torch against arrays torch saved (tests/data).

PyTorch's modules and ours compute the same functions:

- ``nn.RNN`` (tanh): h' = tanh(W_ih x + b_ih + W_hh h + b_hh) is ElmanRNN's U, W and b = b_ih + b_hh;
- ``nn.LSTM``: the chunks i, f, g, o of W_ih, W_hh and the biases are the LSTM's input gate
  (``Ug``, ``Wg``, ``bg``), forget gate (``Uf`` ...), input unit (``U``, ``W``, ``b``) and
  output gate (``Uo`` ...), each bias the sum b_ih + b_hh of its chunk;
- ``nn.GRU``: the chunks r, z, n are the reset gate (``Ur`` ...), the update gate (``Uu`` ...)
  and the candidate (``U``, ``W``, ``b`` = b_in, ``bh`` = b_hn) of ``rnn.GRU(reset="after")``,
  torch's r * (W_hn h + b_hn);
- layer l and direction: torch's suffix ``_l{l-1}`` / ``_reverse``, ours ``l`` / ``_r`` (none
  for one layer);
- the head ``nn.Linear(D * H, n_out)`` on torch's output (the top layer's directions side by
  side) is V and c.

``to_torch`` puts each of our biases in b_ih and zeros in b_hh (their sum is what counts; the
GRU's b_hn is ``bh``).  A module made with ``bias=False`` (a head ``nn.Linear(..., bias=False)``)
has no biases: ``from_torch`` gives the model zero biases (c) that are fixed
(``requires_grad=False``, out of ``parameters()``), so that training moves only what torch's
trains, and ``to_torch`` of a model whose biases (c) are all fixed at zero gives ``bias=False``
back.  A parameter torch does not train (``requires_grad=False``) gives ours made of it alone
fixed likewise, and ``to_torch`` freezes a torch parameter whose every part is fixed here.  Dropout between torch's layers acts only in training, and the models here have
none: ``from_torch`` takes such a module in ``eval()`` mode only (the function it then
computes), and ``to_torch`` gives ``dropout=0``.
"""

import numpy as np

import tinygraph as tg

from .stacked import suffix

# torch's chunks of the stacked gate weights, in torch's order, as our gate letters
CHUNKS = {"rnn": ("",), "lstm": ("g", "f", "", "o"), "gru": ("r", "u", "")}
KINDS = {"rnn": "ElmanRNN", "lstm": "LSTM", "gru": "GRU"}


def _model_class(kind):
    from . import models
    return getattr(models, KINDS[kind])


def mapping(kind, layers, bidirectional):
    """(our suffix, torch suffix) of every layer and direction, in order."""
    pairs = []
    for layer in range(1, layers + 1):
        for reverse in ((False, True) if bidirectional else (False,)):
            pairs.append((suffix(layers, layer, reverse),
                          f"_l{layer - 1}" + ("_reverse" if reverse else "")))
    return pairs


def from_arrays(kind, arrays, head_weight, head_bias, layers, bidirectional, dtype=np.float64,
                fixed=()):
    """Our model from torch's parameter arrays (``module.state_dict()`` as numpy: names as
    torch's, ``bias_*`` may be missing for ``bias=False``) and the head's weight and bias.
    ``fixed``: the names of torch's parameters that it does not train (``requires_grad``
    False; the head's as "head.weight", "head.bias"): ours made of them alone are fixed too."""
    who = "rnn.from_torch"
    first = np.asarray(arrays["weight_ih_l0"])
    H = np.asarray(arrays["weight_hh_l0"]).shape[1]
    n_in = first.shape[1]
    head_weight = np.asarray(head_weight)
    width = H * (2 if bidirectional else 1)
    if head_weight.ndim != 2 or head_weight.shape[1] != width:
        raise tg.ShapeError(f"{who}: the head must read the top layer's output of width "
                            f"{width} ({'2 x ' if bidirectional else ''}hidden_size {H}): "
                            f"its weight has shape {head_weight.shape}, need (n_out, {width})")
    n_out = head_weight.shape[0]
    options = {"reset": "after"} if kind == "gru" else {}
    model = _model_class(kind)(n_in, H, n_out, dtype=dtype, layers=layers,
                               bidirectional=bidirectional, **options)
    chunks = CHUNKS[kind]
    biased = "bias_ih_l0" in arrays
    for ours, theirs in mapping(kind, layers, bidirectional):
        w_ih = np.asarray(arrays[f"weight_ih{theirs}"])
        w_hh = np.asarray(arrays[f"weight_hh{theirs}"])
        zeros = np.zeros(len(chunks) * H)
        b_ih = np.asarray(arrays.get(f"bias_ih{theirs}", zeros))
        b_hh = np.asarray(arrays.get(f"bias_hh{theirs}", zeros))
        for i, gate in enumerate(chunks):
            rows = slice(i * H, (i + 1) * H)
            _set(model, f"U{gate}{ours}", w_ih[rows])
            _set(model, f"W{gate}{ours}", w_hh[rows])
            if kind == "gru" and gate == "":
                _set(model, f"b{ours}", b_ih[rows])
                _set(model, f"bh{ours}", b_hh[rows])
            else:
                _set(model, f"b{gate}{ours}", b_ih[rows] + b_hh[rows])
    _set(model, "V", head_weight)
    _set(model, "c", np.zeros(n_out) if head_bias is None else np.asarray(head_bias))
    for name, p in bias_parameters(model, kind):     # bias=False: zeros that stay zero
        if (name == "c" and head_bias is None) or (name != "c" and not biased):
            p.requires_grad = False
    for name, theirs in sources(kind, layers, bidirectional).items():
        if theirs and all(t in fixed for t in theirs):   # torch trains none of them
            getattr(model, name).requires_grad = False
    return model


def sources(kind, layers, bidirectional):
    """Our parameter name -> the torch parameters it is made of (the head's as "head.weight",
    "head.bias"): a bias b of ours is b_ih + b_hh, a chunk of both (torch trains the sum while
    it trains either); the GRU's candidate b and bh are b_in and b_hn alone."""
    out = {}
    for ours, theirs in mapping(kind, layers, bidirectional):
        for gate in CHUNKS[kind]:
            out[f"U{gate}{ours}"] = [f"weight_ih{theirs}"]
            out[f"W{gate}{ours}"] = [f"weight_hh{theirs}"]
            if kind == "gru" and gate == "":
                out[f"b{ours}"] = [f"bias_ih{theirs}"]
                out[f"bh{ours}"] = [f"bias_hh{theirs}"]
            else:
                out[f"b{gate}{ours}"] = [f"bias_ih{theirs}", f"bias_hh{theirs}"]
    out["V"], out["c"] = ["head.weight"], ["head.bias"]
    return out


def bias_parameters(model, kind):
    """(name, Parameter) of every bias of ``model``: each layer's and direction's b of each gate
    (and the GRU's bh), then the head's c."""
    out = []
    for ours, _ in mapping(kind, model.layers, model.bidirectional):
        for gate in CHUNKS[kind]:
            out.append(f"b{gate}{ours}")
            if kind == "gru" and gate == "":
                out.append(f"bh{ours}")
    return [(name, getattr(model, name)) for name in out + ["c"]]


def _fixed_zero(params):
    """True if every Parameter of ``params`` is fixed (requires_grad False) and all zeros."""
    return all(not p.requires_grad and not np.any(p.data) for p in params)


def _set(model, name, value):
    param = getattr(model, name)
    if param.shape != value.shape:
        raise tg.ShapeError(f"rnn.from_torch: {name} of shape {param.shape} cannot take torch's "
                            f"array of shape {value.shape}")
    param.data = np.array(value, dtype=param.dtype)


def kind_of(model):
    """"rnn", "lstm" or "gru" for a model that has a PyTorch equivalent, else a clear error."""
    from .models import GRU, LSTM, ElmanRNN
    name = type(model).__name__
    if type(model) is ElmanRNN:
        kind = "rnn"
    elif type(model) is LSTM:
        kind = "lstm"
        if model.candidate != "tanh":
            raise tg.ConfigError("LSTM.to_torch: torch's LSTM has a tanh input unit; this one "
                                 f"has candidate={model.candidate!r}")
    elif type(model) is GRU:
        kind = "gru"
        if model.reset != "after" or model.candidate != "tanh":
            raise tg.ConfigError("GRU.to_torch: torch's GRU is reset='after' with a tanh "
                                 f"candidate; this one has reset={model.reset!r}, "
                                 f"candidate={model.candidate!r} (a different function)")
    else:
        raise tg.ConfigError(f"{name}.to_torch: only ElmanRNN, LSTM and GRU have a PyTorch "
                             "equivalent (nn.RNN, nn.LSTM, nn.GRU)")
    return kind


def torch_arrays(model):
    """torch's parameter arrays of ``model`` (names as ``module.state_dict()``) and the head's
    (weight, bias): what :func:`to_torch` loads."""
    kind = kind_of(model)
    H = model.n_hidden
    chunks = CHUNKS[kind]
    arrays = {}
    for ours, theirs in mapping(kind, model.layers, model.bidirectional):
        for letter, key in (("U", "weight_ih"), ("W", "weight_hh"), ("b", "bias_ih")):
            arrays[f"{key}{theirs}"] = np.concatenate([getattr(model, f"{letter}{g}{ours}").data
                                                       for g in chunks])
        arrays[f"bias_hh{theirs}"] = np.concatenate([
            getattr(model, f"bh{ours}").data if kind == "gru" and g == "" else np.zeros(H)
            for g in chunks]).astype(model.dtype)
    return arrays, (model.V.data.copy(), model.c.data.copy())


def _torch(who):
    try:
        import torch
    except ImportError:
        raise tg.ConfigError(f"{who}: needs PyTorch (pip install torch); it is optional and "
                             "used only by rnn.from_torch and model.to_torch") from None
    return torch


def from_torch(module, head):
    """The ``rnn`` model equal to a PyTorch recurrent module and its output layer.

    Parameters
    ----------
    module : torch.nn.RNN (nonlinearity "tanh"), torch.nn.LSTM or torch.nn.GRU, any
        ``num_layers`` and ``bidirectional``, ``batch_first=False``, no ``proj_size``; with
        ``dropout`` between layers, in ``eval()`` mode (the model has no such dropout)
    head : torch.nn.Linear(D * hidden_size, n_out), applied to torch's output at every step

    Returns
    -------
    rnn.ElmanRNN, rnn.LSTM or rnn.GRU(reset="after") with ``layers`` and ``bidirectional`` as
    the module's and the same weights (in the module's dtype): the same outputs o(t), and
    ``loss`` the sum over steps of the batch-mean cross-entropy of ``head(module(x)[0])``.
    A module (head) made with ``bias=False`` gives zero biases (c) fixed at zero
    (``requires_grad=False``, not in ``parameters()``): trained, the model moves what torch's
    module trains, and ``to_torch`` gives ``bias=False`` back.  A parameter of the module that
    torch does not train (``requires_grad=False``) gives the parameters of ours made of it
    alone fixed too (a bias b = b_ih + b_hh: fixed when both are).
    """
    torch = _torch("rnn.from_torch")
    nn = torch.nn
    if isinstance(module, nn.LSTM):
        kind = "lstm"
    elif isinstance(module, nn.GRU):
        kind = "gru"
    elif isinstance(module, nn.RNN):
        kind = "rnn"
        if module.nonlinearity != "tanh":
            raise tg.ConfigError(f"rnn.from_torch: nn.RNN(nonlinearity={module.nonlinearity!r}) "
                                 "is not supported; ElmanRNN is the tanh recurrence")
    else:
        raise tg.ConfigError(f"rnn.from_torch: module must be a torch.nn.RNN, nn.LSTM or nn.GRU, "
                             f"got {type(module).__name__}")
    name = type(module).__name__
    if getattr(module, "batch_first", False):
        raise tg.ConfigError(f"rnn.from_torch: {name}(batch_first=True) is not supported; "
                             "rnn models take (T, B, ...) as torch's batch_first=False")
    if getattr(module, "proj_size", 0):
        raise tg.ConfigError(f"rnn.from_torch: {name}(proj_size={module.proj_size}) is not "
                             "supported (an LSTM with projections)")
    if module.dropout and module.num_layers > 1 and module.training:
        raise tg.ConfigError(f"rnn.from_torch: {name}(dropout={module.dropout}) in training "
                             "mode drops units between its layers at random, which rnn's "
                             f"{KINDS[kind]} does not: the model computes what the module "
                             "computes in eval() mode; call module.eval() first (the model "
                             "then trains without that dropout, and to_torch gives dropout=0)")
    if not isinstance(head, nn.Linear):
        raise tg.ConfigError(f"rnn.from_torch: head must be a torch.nn.Linear, got "
                             f"{type(head).__name__}")
    # each weight as the module computes with it: the attribute (a parametrized one, e.g. by
    # torch.nn.utils.parametrizations.weight_norm, is its computed weight, not in state_dict)
    names = [f"{w}{theirs}" for _, theirs in mapping(kind, module.num_layers,
                                                      bool(module.bidirectional))
             for w in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if module.bias else ())]
    weights = {name: getattr(module, name) for name in names}
    params = {k: v.detach().cpu().numpy() for k, v in weights.items()}
    dtype = params["weight_ih_l0"].dtype
    if dtype.kind != "f" or head.weight.detach().cpu().numpy().dtype != dtype:
        raise tg.DTypeError(f"rnn.from_torch: the module's dtype {dtype} and the head's "
                            f"{head.weight.dtype} must be the same float dtype")
    if head.in_features != module.hidden_size * (2 if module.bidirectional else 1):
        width = module.hidden_size * (2 if module.bidirectional else 1)
        raise tg.ShapeError(f"rnn.from_torch: head Linear(in_features={head.in_features}, "
                            f"out_features={head.out_features}) does not fit the {name}'s "
                            f"output of width {width} (hidden_size {module.hidden_size}"
                            f"{' x 2 directions' if module.bidirectional else ''})")
    bias = None if head.bias is None else head.bias.detach().cpu().numpy()
    fixed = {k for k, v in weights.items() if not v.requires_grad}
    fixed |= {f"head.{k}" for k in ("weight", "bias")
              if getattr(head, k) is not None and not getattr(head, k).requires_grad}
    return from_arrays(kind, params, head.weight.detach().cpu().numpy(), bias,
                       module.num_layers, bool(module.bidirectional), dtype=dtype, fixed=fixed)


def _torch_dtype(torch, dtype, who):
    """torch's dtype of the numpy float ``dtype`` (float16, float32 or float64), else a
    DTypeError: any other became float32 without a word (a float16 model's module computed in
    float32)."""
    name = np.dtype(dtype).name
    if name not in ("float16", "float32", "float64"):
        raise tg.DTypeError(f"{who}: torch has no dtype for this model's {name}; convert it "
                            "with model.to(np.float64) (or float32, float16) first")
    return getattr(torch, name)


def to_torch(model):
    """``(module, head)``: the PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` and
    ``nn.Linear`` equal to ``model`` (see :func:`from_torch`), in the model's dtype."""
    kind = kind_of(model)
    who = f"{type(model).__name__}.to_torch"
    torch = _torch(who)
    nn = torch.nn
    dtype = _torch_dtype(torch, model.dtype, who)
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    biases = bias_parameters(model, kind)
    biased = not _fixed_zero([p for name, p in biases if name != "c"])
    head_biased = not _fixed_zero([model.c])
    module = cls(model.n_in, model.n_hidden, num_layers=model.layers,
                 bidirectional=model.bidirectional, bias=biased, dtype=dtype)
    head = nn.Linear(model.V.shape[1], model.n_out, bias=head_biased, dtype=dtype)
    arrays, (weight, bias) = torch_arrays(model)
    if not biased:
        arrays = {k: v for k, v in arrays.items() if not k.startswith("bias_")}
    trained = _trained(model, kind, who)
    with torch.no_grad():
        module.load_state_dict({k: torch.tensor(v, dtype=dtype) for k, v in arrays.items()})
        head.weight.copy_(torch.tensor(weight, dtype=dtype))
        if head_biased:
            head.bias.copy_(torch.tensor(bias, dtype=dtype))
    for name, p in list(module.named_parameters()) + [(f"head.{k}", v)
                                                      for k, v in head.named_parameters()]:
        p.requires_grad_(trained[name])
    return module, head


def _trained(model, kind, who):
    """torch parameter name -> whether torch is to train it: the model trains some of the
    parameters of ours it is made of (:func:`sources`).  A torch parameter made of some of ours
    that are trained and some that are fixed (``requires_grad=False``) is refused: torch trains
    a parameter whole (its gates' rows together, b_ih and b_hh each whole)."""
    made_of = {}
    for ours, theirs in sources(kind, model.layers, model.bidirectional).items():
        for t in theirs:
            made_of.setdefault(t, []).append(ours)
    trained = {}
    for t, ours in made_of.items():
        moving = [n for n in ours if getattr(model, n).requires_grad]
        if kind == "gru" and t.startswith("bias_hh"):
            # b_hn is bh; the r and z chunks hold zeros: fixed, they leave b_ir + b_hr to b_ir
            # (ours br, trained or not); trained, they would move a fixed br, bu
            bh = [n for n in ours if n.startswith("bh")]
            if not getattr(model, bh[0]).requires_grad:
                trained[t] = False
                continue
        if moving and len(moving) != len(ours):
            fixed = [n for n in ours if n not in moving]
            raise tg.ConfigError(f"{who}: torch's {t} is made of {', '.join(ours)}; "
                                 f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} fixed "
                                 f"(requires_grad=False) but {', '.join(moving)} "
                                 f"{'is' if len(moving) == 1 else 'are'} trained, and torch "
                                 "trains a parameter whole: fix all of them or none")
        trained[t] = bool(moving)
    return trained
