"""create_graph: gradients built from engine ops and differentiated again.

Oracles: the default (numpy) backward for first derivatives, central differences of that
backward for Hessian-vector products, closed forms for third derivatives, and finite
differences of the eq. 10.52 regulariser itself for its gradient.
"""

import numpy as np
import pytest

import rnn
import tinygraph as tg

rng = np.random.default_rng(7)


def _normal(*shape):
    return rng.standard_normal(shape)


def _positive(*shape):
    return np.abs(rng.standard_normal(shape)) + 0.5


def _away(*shape):
    a = rng.standard_normal(shape)
    return np.sign(a) * (np.abs(a) + 0.3)


IDS = np.array([2, 0, 1])
WEIGHTS = _normal(4, 2, 3)

# op -> (function of Tensors, input arrays); every op with a tensor-level rule appears
OPS = {
    "add": (lambda a, b: a + b, [_normal(2, 3), _normal(3)]),
    "sub": (lambda a, b: a - b, [_normal(2, 3), _normal(2, 1)]),
    "mul": (lambda a, b: a * b, [_normal(2, 3), _normal(3)]),
    "div": (lambda a, b: a / b, [_normal(2, 3), _away(3)]),
    "pow": (lambda a, b: a ** b, [_positive(2, 3), _normal(3)]),
    "pow by a constant": (lambda a: a ** 3, [_normal(4)]),
    "neg": (lambda a: -a, [_normal(3)]),
    "exp": (tg.exp, [_normal(3)]),
    "log": (tg.log, [_positive(3)]),
    "log1p": (tg.log1p, [_positive(3)]),
    "tanh": (tg.tanh, [_normal(3)]),
    "sigmoid": (tg.sigmoid, [_normal(4) * 3]),
    "softplus": (tg.softplus, [_normal(4) * 3]),
    "relu": (tg.relu, [_away(4)]),
    "leaky_relu": (tg.leaky_relu, [_away(4)]),
    "abs": (tg.abs, [_away(4)]),
    "sqrt": (lambda a: tg.sqrt(a) + a, [_positive(4)]),   # sqrt(a)^2 alone would be linear
    "where": (lambda a, b: tg.where(np.array([True, False, True]), a, b), [_normal(2, 3), _normal(3)]),
    "maximum": (tg.maximum, [_normal(2, 3), _normal(3)]),
    "minimum": (tg.minimum, [_normal(2, 3), _normal(3)]),
    "clip": (lambda a: a.clip(-0.5, 0.5), [_away(5)]),
    "dropout": (lambda a: tg.dropout(a, 0.5, seed=3), [_normal(6)]),
    "matmul 2-D": (tg.matmul, [_normal(2, 3), _normal(3, 4)]),
    "matmul vector @ matrix": (tg.matmul, [_normal(3), _normal(3, 2)]),
    "matmul matrix @ vector": (tg.matmul, [_normal(2, 3), _normal(3)]),
    "matmul vector @ vector": (tg.matmul, [_normal(3), _normal(3)]),
    "matmul batched": (tg.matmul, [_normal(2, 2, 3), _normal(3, 2)]),
    "addmm": (tg.addmm, [_normal(4), _normal(2, 3), _normal(3, 4)]),
    "addmm broadcasting the product": (tg.addmm, [_normal(2, 4), _normal(3), _normal(3, 4)]),
    "sum": (lambda a: a.sum(axis=1), [_normal(2, 3)]),
    "mean": (lambda a: a.mean(axis=0, keepdims=True), [_normal(2, 3)]),
    "max": (lambda a: a.max(axis=1), [_normal(2, 3)]),
    "min": (lambda a: a.min(), [_normal(2, 3)]),
    "var": (lambda a: a.var(axis=1, ddof=1), [_normal(2, 3)]),
    "std": (lambda a: a.std(axis=0), [_normal(3, 2)]),
    "norm": (tg.norm, [_normal(2, 3)]),
    "prod": (lambda a: a.prod(axis=1), [_normal(2, 3)]),
    "prod with a zero": (lambda a: a.prod(), [np.array([0.0, 1.5, -2.0])]),
    "cumsum": (lambda a: a.cumsum(1), [_normal(2, 3)]),
    "logsumexp": (lambda a: tg.logsumexp(a, axis=1), [_normal(2, 3)]),
    "softmax": (lambda a: tg.softmax(a, axis=0), [_normal(2, 3)]),
    "log_softmax": (tg.log_softmax, [_normal(2, 3)]),
    "reshape": (lambda a: a.reshape(3, 2) * np.arange(6).reshape(3, 2), [_normal(2, 3)]),
    "transpose": (lambda a: a.transpose(2, 0, 1) * WEIGHTS, [_normal(2, 3, 4)]),
    "swapaxes": (lambda a: a.swapaxes(0, 1), [_normal(2, 3)]),
    "squeeze": (lambda a: a.squeeze(), [_normal(1, 3)]),
    "unsqueeze": (lambda a: a.unsqueeze(0), [_normal(3)]),
    "flatten": (tg.flatten, [_normal(2, 3)]),
    "broadcast_to": (lambda a: tg.broadcast_to(a, (2, 3)), [_normal(3)]),
    "sum_to": (lambda a: tg.sum_to(a, (1, 3)), [_normal(2, 3)]),
    "index": (lambda a: a[1:, ::2], [_normal(3, 4)]),
    "index with repeats": (lambda a: a[[0, 0, 2]], [_normal(3, 2)]),
    "take": (lambda a: tg.take(a, IDS, axis=1), [_normal(2, 3)]),
    "concat": (lambda a, b: tg.concat([a, b], axis=1), [_normal(2, 3), _normal(2, 1)]),
    "stack": (lambda a, b: tg.stack([a, b], axis=1), [_normal(2, 3), _normal(2, 3)]),
    "split": (lambda a: tg.split(a, 2, axis=1)[0] * tg.split(a, 2, axis=1)[1][:, :1], [_normal(2, 3)]),
    "cross_entropy": (lambda a: tg.cross_entropy(a, IDS), [_normal(3, 4)]),
    "cross_entropy none, ignore_index": (lambda a: tg.cross_entropy(a, [2, -1, 1], reduction="none",
                                                                    ignore_index=-1), [_normal(3, 4)]),
    "nll_loss": (lambda a: tg.nll_loss(a, IDS, reduction="sum"), [_normal(3, 4)]),
    "mse_loss": (tg.mse_loss, [_normal(2, 3), _normal(3)]),
    "binary_cross_entropy_with_logits": (tg.binary_cross_entropy_with_logits, [_normal(2, 3), rng.random(3)]),
    # the targets' gradient -x g is (2, 3), summed to (1, 3) by a sum_to
    "binary_cross_entropy_with_logits, targets broadcast": (
        lambda a, b: tg.binary_cross_entropy_with_logits(a, b, reduction="sum"), [_normal(2, 3), rng.random((1, 3))]),
    "sum_to (2, 1) to (1, 3)": (lambda a: tg.sum_to(a * a, (1, 3)) * np.arange(3.0), [_normal(2, 1)]),
    "addmm of vectors": (tg.addmm, [_normal(), _normal(3), _normal(3)]),
    # round 3
    "clamp": (lambda a: tg.clamp(a, -0.5, 0.5), [_away(5)]),
    "sign": (lambda a: tg.sign(a) * a, [_away(4)]),
    "square": (tg.square, [_normal(2, 3)]),
    "expm1": (tg.expm1, [_normal(3)]),
    "sin": (tg.sin, [_normal(3)]),
    "cos": (tg.cos, [_normal(3)]),
    "gelu": (tg.gelu, [_normal(5) * 2]),
    "cat": (lambda a, b: tg.cat([a, b], dim=0), [_normal(2, 3), _normal(1, 3)]),
    "hstack": (lambda a, b: tg.hstack([a, b]), [_normal(2, 3), _normal(2, 1)]),
    "vstack": (lambda a, b: tg.vstack([a, b]), [_normal(3), _normal(2, 3)]),
    "unbind": (lambda a: tg.unbind(a, 1)[0] * tg.unbind(a, 1)[2], [_normal(2, 3)]),
    "chunk": (lambda a: a.chunk(2, 1)[0] * WEIGHTS[0, :, :2], [_normal(2, 3)]),
    "flip": (lambda a: tg.flip(a, 1) * a, [_normal(2, 3)]),
    "permute": (lambda a: a.permute(2, 0, 1) * WEIGHTS, [_normal(2, 3, 4)]),
    "moveaxis": (lambda a: tg.moveaxis(a, 0, -1) * WEIGHTS.transpose(2, 0, 1), [_normal(2, 3, 4)]),
    "repeat": (lambda a: a.repeat(2, 2) * np.arange(8.0).reshape(2, 4), [_normal(1, 2)]),
    "tile": (lambda a: tg.tile(a, (1, 2)) * a.sum(), [_normal(2, 3)]),
    "pad": (lambda a: tg.pad(a, ((1, 0), (0, 2)), value=0.5), [_normal(2, 3)]),
    "expand": (lambda a: a.expand(4, -1, 3) * WEIGHTS[:, :, 0][..., None], [_normal(2, 1)]),
    "view": (lambda a: a.view(3, 2) * np.arange(6).reshape(3, 2), [_normal(2, 3)]),
    "amax": (lambda a: a.amax(1), [_normal(2, 3)]),
    "amin": (lambda a: tg.amin(a, 0, keepdims=True), [_normal(2, 3)]),
    "sort": (lambda a: tg.sort(a, 1)[0] * np.arange(3.0), [_normal(2, 3)]),
    "topk": (lambda a: a.topk(2, axis=0)[0] * a[:2], [_normal(3, 3)]),
    "cross_entropy weight, label_smoothing": (
        lambda a: tg.cross_entropy(a, [2, -1, 1], weight=[0.5, 2.0, 1.0, 1.5], label_smoothing=0.1,
                                   ignore_index=-1), [_normal(3, 4)]),
}


def _objective(fn, r):
    """h(x) = sum(r * f(x)^2): a nonzero Hessian even for a linear f."""
    def h(*xs):
        out = fn(*xs)
        return (r * out * out).sum()
    return h


def _default_grads(h, arrays):
    tensors = [tg.tensor(a, requires_grad=True) for a in arrays]
    return tg.grad(h(*tensors), tensors)


@pytest.mark.parametrize("name", sorted(OPS))
def test_hessian_vector_product_matches_finite_differences_of_the_gradient(name):
    fn, arrays = OPS[name]
    r = np.random.default_rng(1).standard_normal(fn(*[tg.tensor(a) for a in arrays]).shape)
    h = _objective(fn, r)
    vs = [np.random.default_rng(2 + i).standard_normal(a.shape) for i, a in enumerate(arrays)]
    xs = [tg.tensor(a, requires_grad=True) for a in arrays]
    grads = tg.grad(h(*xs), xs, create_graph=True)
    for g, expected in zip(grads, _default_grads(h, arrays)):
        assert isinstance(g, tg.Tensor)
        np.testing.assert_allclose(g.data, expected, rtol=1e-12, atol=1e-12)
    hv = tg.grad(tg.stack([(g * v).sum() for g, v in zip(grads, vs)]).sum(), xs)
    eps = 1e-6
    up = _default_grads(h, [a + eps * v for a, v in zip(arrays, vs)])
    down = _default_grads(h, [a - eps * v for a, v in zip(arrays, vs)])
    for got, u, d in zip(hv, up, down):
        np.testing.assert_allclose(got, (u - d) / (2 * eps), rtol=1e-6, atol=1e-6)


def test_backward_with_create_graph_leaves_tensor_gradients_that_differentiate_again():
    x = tg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    (x ** 4).sum().backward(create_graph=True)
    g = x.grad
    assert isinstance(g, tg.Tensor) and g.requires_grad
    np.testing.assert_allclose(g.data, 4 * x.data ** 3)
    assert tg.grad(g.sum(), x).tolist() == (12 * x.data ** 2).tolist()


def test_third_derivative_through_indexing_with_repeats():
    x = tg.tensor([0.5, -1.5], requires_grad=True)
    y = (x[[0, 0, 1]] ** 4).sum()                        # 2 x0^4 + x1^4
    d1 = tg.grad(y, x, create_graph=True)
    d2 = tg.grad(d1.sum(), x, create_graph=True)
    d3 = tg.grad(d2.sum(), x)
    np.testing.assert_allclose(d3, [2 * 24 * 0.5, 24 * -1.5])


def test_create_graph_through_a_custom_op_needs_its_tensor_level_rule():
    def cube(x):
        return x ** 3, (lambda g: 3 * g * x * x,)

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.apply("cube", cube, x).sum()
    with pytest.raises(tg.BackwardError, match="op 'cube'.*tg.defvjp"):
        tg.grad(y, x, create_graph=True)
    tg.defvjp(cube, lambda g, out, x: (3 * g * x * x,))
    g = tg.grad(tg.apply("cube", cube, x).sum(), x, create_graph=True)
    np.testing.assert_allclose(tg.grad(g.sum(), x), 6 * x.data)


def test_grad_with_create_graph_only_visits_nodes_on_paths_to_its_inputs():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    hidden = tg.apply("opaque", lambda a: (a * 2, (lambda g: 2 * g,)), w)   # no tensor-level rule
    g = tg.grad((hidden * x.tanh()).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.data, 2 * w.data * (1 - np.tanh(x.data) ** 2))


def test_create_graph_keeps_the_graph_for_another_backward_by_default():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 2).sum()
    tg.grad(y, x, create_graph=True)
    np.testing.assert_allclose(tg.grad(y, x), 2 * x.data)


# ---------------------------------------------------------------- eq. 10.52 on an Elman RNN


def omega(model, xs, ys):
    """The loss and the regulariser of eq. 10.52 (Pascanu et al., 2013):
    Omega = sum_t (|| (dL/dh(t)) dh(t)/dh(t-1) || / || dL/dh(t) || - 1)^2, every factor a
    Tensor built by create_graph, so Omega can be back-propagated."""
    run = model.run(xs, ys)
    grads = tg.grad(run.loss, run.states, create_graph=True)
    total = 0.0
    for t in range(1, len(run.states)):
        v = grads[t]
        back = tg.grad(run.states[t], run.states[t - 1], grad=v, create_graph=True)
        total = total + (back.norm() / v.norm() - 1) ** 2
    return run.loss, total


def test_gradient_of_the_eq_10_52_regulariser_matches_finite_differences():
    model = rnn.ElmanRNN(3, 3, 3, seed=1)
    xs, ys = np.array([0, 2, 1, 1]), np.array([1, 0, 2, 0])
    _, reg = omega(model, xs, ys)
    reg.backward()
    eps = 1e-6
    for p in (model.W, model.U, model.V):
        numeric = np.zeros_like(p.data)
        for idx in np.ndindex(p.shape):
            old = p.data[idx]
            p.data[idx] = old + eps
            up = omega(model, xs, ys)[1].item()
            p.data[idx] = old - eps
            down = omega(model, xs, ys)[1].item()
            p.data[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(p.grad, numeric, rtol=1e-5, atol=1e-8)


def test_training_elman_with_the_eq_10_52_regulariser_lowers_it():
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 4, 8), rng.integers(0, 4, 8)
    finals = {}
    for strength in (0.0, 1.0):
        model = rnn.ElmanRNN(4, 6, 4, seed=0)
        opt = tg.optim.Adam(model.parameters(), 0.02)
        first = None
        for _ in range(40):
            opt.zero_grad()
            loss, reg = omega(model, xs, ys)
            first = reg.item() if first is None else first
            (loss + strength * reg).backward()
            opt.step()
        finals[strength] = omega(model, xs, ys)[1].item()
    assert finals[1.0] < first / 5            # 1.51 -> about 0.09
    assert finals[1.0] < finals[0.0] / 5      # the loss alone leaves it near 1


@pytest.mark.parametrize("fn", [
    lambda a, b: tg.maximum(a, b),                 # tie shares are float64 arrays
    lambda a, b: a * 2.0 + b,                      # a Python number became a float64 leaf
    lambda a, b: a * b.data.astype(np.float64),    # a float64 constant: the product is float64
    lambda a, b: (a * tg.tensor(np.ones(3))).sum() + b,
])
def test_create_graph_gives_a_float32_input_a_float32_gradient_as_backward_does(fn):
    a = tg.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    b = tg.tensor(np.array([1.0, 0.5, 3.0], np.float32), requires_grad=True)
    plain = tg.grad(fn(a, b).sum(), [a, b])
    built = tg.grad(fn(a, b).sum(), [a, b], create_graph=True)
    for p, g in zip(plain, built):
        assert p.dtype == np.float32 and g.dtype == np.float32
        np.testing.assert_allclose(g.data, p, rtol=1e-6)
    y = fn(a, b).sum()
    y.backward(create_graph=True)
    assert a.grad.dtype == np.float32 and (b.grad is None or b.grad.dtype == np.float32)
