"""A scheduler's state_dict names its kind and settings; loading another's is refused."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph.errors import CheckpointError
from tinygraph.lr_scheduler import CosineAnnealingLR, LambdaLR, ReduceLROnPlateau, StepLR


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


def _plateau(opt, **settings):
    return tg.optim.lr_scheduler.ReduceLROnPlateau(opt, **{"patience": 2, **settings})


def _plateau_state():
    s = _plateau(_opt())
    for loss in (3.0, 2.0, 2.5, 2.4):
        s.step(loss)
    assert (s.best, s.num_bad_epochs) == (2.0, 2)
    return s.state_dict()


@pytest.mark.parametrize("other", [dict(mode="max"), dict(patience=3), dict(factor=0.5),
                                   dict(threshold=1e-3), dict(threshold_mode="abs"),
                                   dict(cooldown=1), dict(min_lr=0.01), dict(eps=1e-9)])
def test_plateau_state_refused_by_other_settings_naming_the_setting(other):
    # was: ReduceLROnPlateau's state held its counts alone, so a mode="min" state (best loss
    # 2.0) loaded into mode="max" read 2.0 as the best accuracy, and 2 bad epochs of patience
    # 2 counted against patience 3, without a word
    state = _plateau_state()
    target = _plateau(_opt(), **other)
    before = target.state_dict()
    name = next(iter(other))
    with pytest.raises(CheckpointError, match=rf"ReduceLROnPlateau.load_state_dict: .*{name}"):
        target.load_state_dict(state)
    after = target.state_dict()
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_plateau_state_and_another_kinds_are_refused_both_ways_naming_both():
    state = _plateau_state()
    with pytest.raises(CheckpointError, match="ReduceLROnPlateau, not StepLR"):
        StepLR(_opt(), step_size=2).load_state_dict(state)
    target = _plateau(_opt())
    with pytest.raises(CheckpointError, match="StepLR, not ReduceLROnPlateau"):
        target.load_state_dict(_stepped(lambda o: StepLR(o, step_size=2)).state_dict())
    assert (target.best, target.num_bad_epochs, target.last_epoch) == (np.inf, 0, 0)


def test_plateau_state_of_the_same_settings_and_an_old_state_still_load():
    state = _plateau_state()
    target = _plateau(_opt())
    target.load_state_dict(state)
    assert (target.best, target.num_bad_epochs, target.last_epoch) == (2.0, 2, 4)
    old = {k: state[k] for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")}
    target = _plateau(_opt(), mode="max")       # saved before the settings were: not checked
    target.load_state_dict(old)
    assert (target.best, target.num_bad_epochs, target.last_epoch) == (2.0, 2, 4)


def _warmup(length):
    return lambda epoch: min(1.0, (epoch + 1) / length)


def test_lambdalr_state_refused_by_a_function_of_another_value_at_its_epoch():
    # was: a LambdaLR state loaded into a LambdaLR of any function; resumed with a warmup of
    # 10 epochs instead of 5, epoch 3's rate was 0.4, not the saved run's 0.8, without a word
    state = _stepped(lambda o: LambdaLR(o, _warmup(5))).state_dict()
    target = LambdaLR(_opt(), _warmup(10))
    before = (target.last_epoch, target.get_last_lr())
    with pytest.raises(CheckpointError, match="lr_lambda of group 0 giving 0.8 at epoch 3.*0.4"):
        target.load_state_dict(state)
    assert (target.last_epoch, target.get_last_lr()) == before
    with pytest.raises(CheckpointError, match="LambdaLR, not StepLR"):
        StepLR(_opt(), step_size=2).load_state_dict(state)


def test_lambdalr_state_loads_into_the_same_functions_and_one_saved_before_into_any():
    state = _stepped(lambda o: LambdaLR(o, _warmup(5))).state_dict()
    target = LambdaLR(_opt(), _warmup(5))
    target.load_state_dict(state)
    assert target.last_epoch == 3 and target.get_last_lr() == [0.8]
    # functions that agree at the saved epoch pass: only that epoch's value can be checked
    target = LambdaLR(_opt(), lambda epoch: 0.8 if epoch == 3 else 0.0)
    target.load_state_dict(state)
    assert target.get_last_lr() == [0.8]
    older = {k: v for k, v in state.items() if k != "lr_lambda"}
    target = LambdaLR(_opt(), _warmup(10))
    target.load_state_dict(older)
    assert target.last_epoch == 3 and target.get_last_lr() == [0.4]


def _plateau_of(opt=None, **settings):
    return ReduceLROnPlateau(opt or _opt(), **settings)


def test_plateau_state_of_another_mode_is_refused_naming_the_setting():
    # a mode="min" state (best 0.8, the lowest loss) loaded into mode="max" was taken as the
    # highest accuracy so far: the next metric 0.7 counted as a bad epoch and, with patience 0,
    # halved the rate (1.0 -> 0.5), where the saved run had improved
    saved = _plateau_of(mode="min", patience=0, factor=0.5)
    for metric in (1.0, 0.9, 0.8):
        saved.step(metric)
    state = saved.state_dict()
    target = _plateau_of(mode="max", patience=0, factor=0.5)
    before = (target.best, target.num_bad_epochs, target.last_epoch, target.get_last_lr())
    with pytest.raises(CheckpointError, match="mode='min'.*mode='max'"):
        target.load_state_dict(state)
    assert (target.best, target.num_bad_epochs, target.last_epoch, target.get_last_lr()) == before


@pytest.mark.parametrize("setting, value", [("patience", 3), ("factor", 0.5), ("cooldown", 2),
                                            ("threshold", 1e-3), ("threshold_mode", "abs"),
                                            ("min_lr", 1e-4), ("eps", 1e-6)])
def test_plateau_state_of_other_settings_is_refused(setting, value):
    saved = _plateau_of()
    saved.step(1.0)
    saved.step(2.0)
    target = _plateau_of(**{setting: value})
    with pytest.raises(CheckpointError, match=setting):
        target.load_state_dict(saved.state_dict())
    assert target.last_epoch == 0 and target.num_bad_epochs == 0


def test_plateau_and_step_states_are_refused_by_each_other_naming_both():
    step = _stepped(lambda o: StepLR(o, step_size=2)).state_dict()
    with pytest.raises(CheckpointError, match="StepLR, not ReduceLROnPlateau"):
        _plateau_of().load_state_dict(step)
    with pytest.raises(CheckpointError, match="ReduceLROnPlateau, not StepLR"):
        StepLR(_opt(), step_size=2).load_state_dict(_plateau_of().state_dict())


def test_plateau_state_of_the_same_settings_and_an_old_state_load():
    saved = _plateau_of(patience=1, factor=0.5, min_lr=[0.01])
    for metric in (1.0, 2.0, 3.0, 4.0):
        saved.step(metric)
    state = saved.state_dict()
    target = _plateau_of(patience=1, factor=0.5, min_lr=0.01)
    target.load_state_dict(state)
    assert (target.best, target.num_bad_epochs, target.cooldown_counter, target.last_epoch) == \
        (saved.best, saved.num_bad_epochs, saved.cooldown_counter, saved.last_epoch)
    old = {k: state[k] for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")}
    target = _plateau_of(patience=1, factor=0.5, min_lr=0.01)
    target.load_state_dict(old)
    assert target.last_epoch == 4 and target.best == 1.0


@pytest.mark.parametrize("entry, bad", [("scheduler", [[1, 2], [3]]), ("setting.gamma", [[1], [2, 3]])])
def test_a_kind_or_setting_that_is_no_array_is_refused_naming_it(entry, bad):
    # a ragged entry was a bare numpy ValueError ("inhomogeneous shape")
    state = _stepped(lambda o: StepLR(o, step_size=2, gamma=0.5)).state_dict()
    state[entry] = bad
    target = StepLR(_opt(), step_size=2, gamma=0.5)
    with pytest.raises(CheckpointError, match=r"StepLR\.load_state_dict: .*(scheduler|gamma)"):
        target.load_state_dict(state)
    assert target.last_epoch == 0


def test_lambdalr_state_dict_does_not_call_the_functions_again():
    # state_dict called lr_lambda(last_epoch) once more: a function with side effects (a
    # counter, a log line) ran an extra time, and one that raises made state_dict fail
    calls = []

    def warmup(epoch):
        calls.append(epoch)
        if len(calls) > 4:
            raise RuntimeError("called after the run")
        return min(1.0, (epoch + 1) / 5)

    scheduler = _stepped(lambda o: LambdaLR(o, warmup))
    assert calls == [0, 1, 2, 3]
    state = scheduler.state_dict()
    assert calls == [0, 1, 2, 3]
    np.testing.assert_array_equal(state["lr_lambda"], [0.8])
    target = LambdaLR(_opt(), _warmup(5))
    target.load_state_dict(state)
    assert target.get_last_lr() == [0.8]
    np.testing.assert_array_equal(target.state_dict()["lr_lambda"], [0.8])


@pytest.mark.parametrize("value", [None, "0.5", [0.5]])
def test_lambdalr_function_that_returns_no_number_is_a_clear_error(value):
    # None or a string: base * value was a bare TypeError from the multiplication
    opt = _opt()
    with pytest.raises(tg.ConfigError, match=r"LambdaLR: lr_lambda of group 0 gave .* at epoch 0; "
                                             "it must return a number"):
        LambdaLR(opt, lambda epoch: value)
    scheduler = LambdaLR(opt, lambda epoch: 0.5 if epoch < 2 else value)
    scheduler.step()
    with pytest.raises(tg.ConfigError, match="gave .* at epoch 2"):
        scheduler.step()
    assert scheduler.last_epoch == 1 and opt.lr == 0.5
    assert LambdaLR(_opt(), lambda epoch: np.array(0.25)).get_last_lr() == [0.25]


_WARMUP_CALLS = []


def _counted_warmup(epoch):       # module level: a pickle holds it by name
    _WARMUP_CALLS.append(epoch)
    return min(1.0, (epoch + 1) / 5)


def test_a_lambdalr_pickled_before_it_recorded_its_factors_still_gives_its_state():
    # was: a LambdaLR pickled before its state gained _factors raised a bare AttributeError
    # ("'LambdaLR' object has no attribute '_factors'") from state_dict, and step then from lr_at
    import pickle
    scheduler = _stepped(lambda o: LambdaLR(o, _counted_warmup))
    expected = scheduler.state_dict()
    del scheduler._factors, scheduler._computed      # what an older tinygraph pickled
    old = pickle.loads(pickle.dumps(scheduler))
    _WARMUP_CALLS.clear()
    state = old.state_dict()
    assert state.keys() == expected.keys()
    assert all(np.array_equal(state[k], expected[k]) for k in expected)
    assert _WARMUP_CALLS == [3]                      # computed once, at its last epoch
    old.state_dict()
    assert _WARMUP_CALLS == [3]
    old.step()
    assert old.last_epoch == 4 and old.get_last_lr() == [1.0]
    assert old.state_dict()["lr_lambda"].tolist() == [1.0]


@pytest.mark.parametrize("make", [lambda o: StepLR(o, step_size=3, gamma=0.5),
                                  lambda o: CosineAnnealingLR(o, T_max=10),
                                  lambda o: LambdaLR(o, lambda t: 0.9 ** t)])
@pytest.mark.parametrize("change", ["plateau", "another schedule", "by hand"])
def test_a_rate_changed_by_something_else_is_not_overwritten_by_a_step(make, change):
    # ReduceLROnPlateau(patience=0) cut the rate 1.0 -> 0.1 at epoch 1; StepLR's closed form
    # then set it back to 1.0 without a word (torch's chainable StepLR keeps the cut: 0.005
    # by epoch 3 of the plateau metrics below, here 0.5)
    opt = _opt()
    scheduler = make(opt)
    if change == "plateau":
        plateau = ReduceLROnPlateau(opt, patience=0)
        plateau.step(1.0)
        scheduler.step()
        plateau.step(2.0)          # no improvement: the rate is cut
    elif change == "another schedule":
        StepLR(opt, step_size=1, gamma=0.5).step()
    else:
        opt.param_groups[0]["lr"] *= 0.1
    cut = opt.param_groups[0]["lr"]
    before = (scheduler.last_epoch, scheduler.get_last_lr())
    with pytest.raises(tg.ConfigError, match=r"learning rate of group 0 is .*something else "
                                             r"changed it"):
        scheduler.step()
    assert (scheduler.last_epoch, scheduler.get_last_lr()) == before
    assert opt.param_groups[0]["lr"] == cut
    fresh = make(opt)       # made after the change: it starts from the rate it finds
    fresh.step()
    assert fresh.last_epoch == 1 and fresh.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_a_schedule_resumed_from_a_state_dict_steps_on():
    saved = _stepped(lambda o: StepLR(o, step_size=2, gamma=0.5))
    opt = _opt()
    opt.load_state_dict(saved.optimizer.state_dict())     # the saved rate, then the schedule's
    resumed = StepLR(opt, step_size=2, gamma=0.5)
    resumed.load_state_dict(saved.state_dict())
    resumed.step()
    saved.step()
    assert resumed.get_last_lr() == saved.get_last_lr() == [0.25]
