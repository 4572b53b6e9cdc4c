"""A scheduler's state_dict names its kind and settings; loading another's is refused."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.errors import CheckpointError
from tinygraph.lr_scheduler import CosineAnnealingLR, StepLR


def _opt():
    return tg.optim.SGD([tg.Tensor(np.zeros(2), requires_grad=True)], lr=1.0)


def _stepped(make, n=3):
    s = make(_opt())
    for _ in range(n):
        s.step()
    return s


def test_steplr_state_refused_by_cosine_naming_both():
    state = _stepped(lambda o: StepLR(o, step_size=2, gamma=0.5)).state_dict()
    target = CosineAnnealingLR(_opt(), T_max=10)
    before = (target.last_epoch, target.get_last_lr())
    with pytest.raises(CheckpointError, match="StepLR.*CosineAnnealingLR"):
        target.load_state_dict(state)
    assert (target.last_epoch, target.get_last_lr()) == before


@pytest.mark.parametrize("other", [dict(step_size=2, gamma=0.1), dict(step_size=5, gamma=0.5)])
def test_steplr_state_refused_by_other_settings(other):
    state = _stepped(lambda o: StepLR(o, step_size=2, gamma=0.5)).state_dict()
    target = StepLR(_opt(), **other)
    before = (target.last_epoch, target.get_last_lr())
    with pytest.raises(CheckpointError, match="step_size|gamma"):
        target.load_state_dict(state)
    assert (target.last_epoch, target.get_last_lr()) == before


def test_same_scheduler_and_old_state_still_load():
    state = _stepped(lambda o: StepLR(o, step_size=2, gamma=0.5)).state_dict()
    target = StepLR(_opt(), step_size=2, gamma=0.5)
    target.load_state_dict(state)
    assert target.last_epoch == 3 and target.get_last_lr() == [0.5]
    old = {"last_epoch": state["last_epoch"], "base_lrs": state["base_lrs"]}
    target = StepLR(_opt(), step_size=2, gamma=0.5)
    target.load_state_dict(old)
    assert target.last_epoch == 3 and target.get_last_lr() == [0.5]
