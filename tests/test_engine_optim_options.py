"""Optimizers given an option they do not take (PyTorch's nesterov=, amsgrad=, ..., or a typo)
raise UnsupportedOptionError naming the optimizer and the option: a ConfigError, and still the
TypeError Python raises for an unexpected keyword argument."""

import numpy as np
import pytest

import tinygraph as tg

TORCH_OPTIONS = ["nesterov", "amsgrad", "foreach", "fused", "capturable", "differentiable",
                 "maximize"]


@pytest.mark.parametrize("cls", [tg.optim.SGD, tg.optim.Adagrad, tg.optim.Adam, tg.optim.AdamW])
@pytest.mark.parametrize("option", TORCH_OPTIONS)
def test_a_torch_option_is_refused_by_name(cls, option):
    p = tg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(tg.UnsupportedOptionError) as info:
        cls([p], lr=0.1, **{option: True})
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}: ")
    assert f"{option}=True" in message and "not supported" in message
    assert "lr" in message      # what it takes instead
    assert isinstance(info.value, tg.ConfigError) and isinstance(info.value, TypeError)


def test_an_unknown_option_is_refused_by_name():
    p = tg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(tg.ConfigError, match=r"SGD: unknown option lrr=0\.1, not supported; SGD "
                                             r"takes params, lr, momentum, weight_decay"):
        tg.optim.SGD([p], lr=0.1, lrr=0.1)
    with pytest.raises(TypeError, match="Adam: unknown option"):
        tg.optim.Adam([p], betas1=0.9)


def test_the_options_it_takes_still_work():
    p = tg.tensor(np.ones(3), requires_grad=True)
    opt = tg.optim.SGD([p], lr=0.5, momentum=0.9, weight_decay=0.0)
    p.grad = np.ones(3)
    opt.step()
    assert np.array_equal(p.data, np.full(3, 0.5))
