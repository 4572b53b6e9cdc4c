"""The gradient of a gather with repeated indices (x[idx], take, an embedding's rows) sums each
entry's values in the order given, as ``np.add.at`` does: the same bits as np.add.at into zeros.
Was: a 1-D x with 32 or more indices summed each entry's values pairwise (the sorted path's
1-D sum), other bits than np.add.at in 252 of 300 random cases, against its docstring."""

import numpy as np
import pytest

import tinygraph as tg


def _cases(rng, count, shape_tail=()):
    for _ in range(count):
        n = int(rng.integers(1, 3000))
        k = int(rng.integers(1, 60))
        idx = rng.integers(-k, k, n)
        scale = 10.0 ** rng.uniform(-4, 4, (n,) + (1,) * len(shape_tail))
        yield k, idx, rng.standard_normal((n,) + shape_tail) * scale


@pytest.mark.parametrize("gather", ["index", "take"])
def test_a_1d_gather_gradient_is_np_add_at_bit_for_bit(gather):
    rng = np.random.default_rng(7)
    for k, idx, v in _cases(rng, 60):
        x = tg.tensor(np.zeros(k), requires_grad=True)
        y = x[idx] if gather == "index" else tg.take(x, idx, 0)
        y.backward(v)
        expected = np.zeros(k)
        np.add.at(expected, idx, v)
        assert x.grad.tobytes() == expected.tobytes(), (k, idx.size)


def test_a_gather_of_rows_gradient_is_np_add_at_bit_for_bit():
    rng = np.random.default_rng(8)
    for k, idx, v in _cases(rng, 30, (3,)):
        idx, v = idx[:1024], v[:1024]       # one chunk of the sorted path
        x = tg.tensor(np.zeros((k, 3)), requires_grad=True)
        x[idx].backward(v)
        expected = np.zeros((k, 3))
        np.add.at(expected, idx, v)
        assert x.grad.tobytes() == expected.tobytes(), (k, idx.size)
