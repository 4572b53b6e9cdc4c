"""What tensors, parameters, modules and optimizers print."""

import numpy as np

import rnn
import tinygraph as tg


def test_parameter_prints_as_parameter_and_shows_a_non_float64_dtype():
    assert repr(tg.Parameter(np.ones(2), name="b")) == "Parameter([1. 1.], name='b')"
    assert repr(tg.Parameter(np.ones(2), dtype=np.float32)) == "Parameter([1. 1.], dtype=float32)"
    assert repr(tg.tensor([1, 2])) == "tensor([1 2], dtype=int64)"
    assert repr(tg.tensor([1.0]) * tg.Parameter([2.0])) == "tensor([2.], op=mul, requires_grad=True)"


def test_module_prints_its_class_sizes_and_parameter_shapes():
    text = repr(rnn.ElmanRNN(5, 4, 3, seed=0, dtype=np.float32))
    assert text.splitlines() == [
        "ElmanRNN(",
        "  n_in=5, n_hidden=4, n_out=3",
        "  (U): Parameter(shape=(4, 5), dtype=float32)",
        "  (W): Parameter(shape=(4, 4), dtype=float32)",
        "  (V): Parameter(shape=(3, 4), dtype=float32)",
        "  (b): Parameter(shape=(4,), dtype=float32)",
        "  (c): Parameter(shape=(3,), dtype=float32)",
        "  55 parameter values in 5 parameters",
        ")",
    ]


def test_optimizers_print_their_settings_and_progress():
    params = rnn.ElmanRNN(2, 2, 2).parameters()
    assert repr(tg.optim.SGD(params, 0.1, momentum=0.9)) == \
        "SGD(lr=0.1, momentum=0.9; 5 parameters, 16 values; 0 steps)"
    assert repr(tg.optim.Adam(params, 0.01)) == \
        "Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-08; 5 parameters, 16 values; 0 steps)"
    assert repr(tg.optim.Adagrad(params, 0.5)).startswith("Adagrad(lr=0.5, eps=1e-10;")


def test_counts_of_one_are_singular_in_optimizer_and_module_reprs():
    p = tg.Parameter(np.ones(1))
    opt = tg.optim.SGD([p], 0.1)
    assert repr(opt) == "SGD(lr=0.1, momentum=0.0; 1 parameter, 1 value; 0 steps)"
    (p * p).sum().backward()
    opt.step()
    assert repr(opt) == "SGD(lr=0.1, momentum=0.0; 1 parameter, 1 value; 1 step)"

    class One(tg.Module):
        def __init__(self):
            self.w = tg.Parameter(np.ones(1))

    assert repr(One()).splitlines()[-2] == "  1 parameter value in 1 parameter"
