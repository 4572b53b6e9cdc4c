"""Every input's gradient has that input's dtype: float16 and float32 inputs of every public
op, beside float64 or integer operands, broadcast or not, first order and create_graph (the
rules of maximum and minimum build their tie shares in float64; the engine casts each
gradient to its input's dtype, which this sweep keeps true for every op)."""

import numpy as np
import pytest

import tinygraph as tg

UNARY = {
    **{name: getattr(tg, name) for name in [
        "abs", "cos", "exp", "expm1", "gelu", "log", "log1p", "neg", "relu", "sigmoid", "sign",
        "sin", "softplus", "sqrt", "square", "tanh", "leaky_relu", "norm", "flatten", "sum",
        "mean", "max", "min", "amax", "amin", "prod", "std", "var"]},
    "flip": lambda x: tg.flip(x, axis=0),
    "cumsum": lambda x: tg.cumsum(x, axis=1),
    "softmax": lambda x: tg.softmax(x, axis=0),
    "log_softmax": lambda x: tg.log_softmax(x, axis=None),
    "logsumexp": lambda x: tg.logsumexp(x, axis=(0, 1)),
    "cross_entropy": lambda x: tg.cross_entropy(x, np.array([0, 2, 1])),
    "cross_entropy_smoothed": lambda x: tg.cross_entropy(x, np.array([0, 2, 1]), label_smoothing=0.1),
    "nll_loss": lambda x: tg.nll_loss(x, np.array([0, 2, 1])),
    "take": lambda x: tg.take(x, np.array([0, 2, 2]), axis=1),
    "fancy index": lambda x: x[np.array([1, 1, 0])],
    "reversed slice": lambda x: x[::-1, 1:],
    "pad": lambda x: tg.pad(x, ((1, 0), (0, 2))),
    "tile": lambda x: tg.tile(x, (2, 1)),
    "clip": lambda x: tg.clip(x, 0.8, 1.2),
    "where": lambda x: tg.where(x.data > 1, x, np.float64(2.0)),
    "sort": lambda x: tg.sort(x, axis=1),
    "max of ties": lambda x: tg.max(tg.concat([x, x], axis=1), axis=1),
}
BINARY = ["add", "sub", "mul", "div", "power", "maximum", "minimum", "matmul", "mse_loss",
          "binary_cross_entropy_with_logits"]


def _first(y):
    return y[0] if isinstance(y, tuple) else y


def _grad_dtypes(fn, tensors, create_graph):
    out = _first(fn(*tensors))
    leaves = [t for t in tensors if t.requires_grad]
    grads = tg.grad(tg.sum(tg.tanh(out)), leaves, create_graph=create_graph)
    return [(np.asarray(g.data if isinstance(g, tg.Tensor) else g).dtype, t.dtype) for g, t in
            zip(grads, leaves)]


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_a_unary_ops_gradient_has_its_inputs_dtype(name, dtype, create_graph):
    x = tg.tensor((np.arange(9).reshape(3, 3) % 4 / 4 + 0.75).astype(dtype), requires_grad=True)
    for got, want in _grad_dtypes(UNARY[name], [x], create_graph):
        assert got == want


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("other", [np.float16, np.float32, np.float64, np.int8, np.int64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dtype", [np.float16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", BINARY)
def test_a_binary_ops_gradients_have_their_inputs_dtypes(name, dtype, other, create_graph):
    shapes = [((3, 3), (3, 3)), ((3, 3), (3,))] if name != "matmul" else [((3, 3), (3, 2)),
                                                                          ((3,), (3, 2))]
    if name not in ("mse_loss", "binary_cross_entropy_with_logits", "matmul"):
        shapes.append(((3, 1), (1, 3)))
    for sa, sb in shapes:
        a = np.ones(sa, dtype)              # ties everywhere: maximum and minimum share g
        b = np.ones(sb, other)
        for first, second in ((a, b), (b, a)):
            if name == "matmul" and first is b:
                continue
            ts = [tg.tensor(v, requires_grad=v.dtype.kind == "f") for v in (first, second)]
            for got, want in _grad_dtypes(getattr(tg, name), ts, create_graph):
                assert got == want, (sa, sb)
