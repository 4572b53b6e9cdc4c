"""Round 3 of the optimizers (SPEC "PyTorch habits"): weight decay (L2 on the gradient in SGD,
Adagrad and Adam; decoupled in AdamW), parameter groups, lr=0, state dicts that carry the
groups' settings, and the learning-rate schedulers.

The oracle is each algorithm as PyTorch documents it, written out below in numpy and run in
float64 for 20 steps beside the engine's; where torch is installed, torch itself too.
"""

import math
import warnings

import numpy as np
import pytest

import tinygraph as tg

STEPS = 20
CURVATURE = np.array([1.0, 3.0, 0.5, 2.0])
START = np.array([0.5, -1.0, 2.0, 0.1])


def _gradient(p):
    """The gradient of sum(a (p - 1)^2 / 2 + sin p): not linear in p, so every step differs."""
    return CURVATURE * (p - 1.0) + np.cos(p)


def _loss(p):
    return (CURVATURE * (p - 1.0) ** 2 / 2).sum() + tg.sin(p).sum()


def _reference(kind, lrs, steps=STEPS, momentum=0.0, betas=(0.9, 0.999), eps=None, weight_decay=0.0):
    """The parameter after each step of PyTorch's documented algorithm, lrs[t] the rate of step t."""
    p = START.copy()
    m = v = buf = np.zeros_like(p)
    s = np.zeros_like(p)
    out = []
    for t in range(1, steps + 1):
        lr, g = lrs[t - 1], _gradient(p)
        if kind == "AdamW":
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        if kind == "SGD":
            if momentum:
                buf = g if t == 1 else momentum * buf + g
                g = buf
            p = p - lr * g
        elif kind == "Adagrad":
            s = s + g * g
            p = p - lr * g / (np.sqrt(s) + (1e-10 if eps is None else eps))
        else:
            b1, b2 = betas
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            # lr m_hat / (sqrt(v_hat) + eps) in PyTorch's order (bias corrections as numbers)
            denominator = np.sqrt(v) / math.sqrt(1 - b2 ** t) + (1e-8 if eps is None else eps)
            p = p - lr / (1 - b1 ** t) * (m / denominator)
        out.append(p)
    return out


def _run(opt, p, scheduler=None, steps=STEPS):
    out = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(p).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        out.append(p.data.copy())
    return out


OPTIMIZERS = {
    "sgd weight decay": ("SGD", {"lr": 0.05, "weight_decay": 0.1}),
    "sgd momentum weight decay": ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.3}),
    "adagrad weight decay": ("Adagrad", {"lr": 0.4, "weight_decay": 0.2}),
    "adam weight decay": ("Adam", {"lr": 0.1, "betas": (0.8, 0.99), "weight_decay": 0.5}),
    "adamw": ("AdamW", {"lr": 0.1, "weight_decay": 0.5}),
    "adamw default decay": ("AdamW", {"lr": 0.1}),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_twenty_steps_equal_pytorchs_documented_algorithm_written_out(name):
    kind, settings = OPTIMIZERS[name]
    p = tg.Parameter(START.copy())
    got = _run(getattr(tg.optim, kind)([p], **settings), p)
    reference = dict(settings)
    if kind == "AdamW":
        reference.setdefault("weight_decay", 0.01)   # torch's AdamW default
    expected = _reference(kind, [reference.pop("lr")] * STEPS, **reference)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_adam_weight_decay_is_l2_on_the_gradient_and_adamw_is_not():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    adam = _run(tg.optim.Adam([p], lr=0.1, weight_decay=0.5), p)[-1]
    adamw = _run(tg.optim.AdamW([q], lr=0.1, weight_decay=0.5), q)[-1]
    assert np.abs(adam - adamw).max() > 1e-3


def test_zero_learning_rate_is_allowed_and_leaves_the_parameters_unchanged():
    for make in (lambda ps: tg.optim.SGD(ps, lr=0.0, momentum=0.9), lambda ps: tg.optim.Adam(ps, lr=0),
                 lambda ps: tg.optim.AdamW(ps, lr=0.0), lambda ps: tg.optim.Adagrad(ps, lr=0.0)):
        p = tg.Parameter(START.copy())
        opt = make([p])
        _run(opt, p, steps=3)
        np.testing.assert_array_equal(p.data, START)
        assert opt.steps == 3


@pytest.mark.parametrize("make", [
    lambda ps: tg.optim.SGD(ps, lr=-0.1),
    lambda ps: tg.optim.Adam(ps, lr=float("inf")),
    lambda ps: tg.optim.SGD(ps, lr=0.1, weight_decay=-1.0),
    lambda ps: tg.optim.AdamW(ps, weight_decay=float("nan")),
], ids=["negative_lr", "infinite_lr", "negative_weight_decay", "nan_weight_decay"])
def test_negative_or_non_finite_settings_are_refused(make):
    with pytest.raises(tg.ConfigError, match="must be a number >= 0"):
        make([tg.Parameter(START.copy())])

# ---------------------------------------------------------------- parameter groups


def test_each_parameter_group_steps_with_its_own_lr_and_weight_decay():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.01, "weight_decay": 0.2}],
                       lr=0.05, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.01]
    assert opt.param_groups[0]["weight_decay"] == 0.0 and opt.param_groups[1]["momentum"] == 0.9
    assert opt.params == [p, q]
    for _ in range(STEPS):
        opt.zero_grad()
        (_loss(p) + _loss(q)).backward()
        opt.step()
    np.testing.assert_allclose(p.data, _reference("SGD", [0.05] * STEPS, momentum=0.9)[-1], rtol=1e-13)
    np.testing.assert_allclose(q.data, _reference("SGD", [0.01] * STEPS, momentum=0.9,
                                                  weight_decay=0.2)[-1], rtol=1e-13)


def test_a_learning_rate_changed_in_param_groups_applies_from_the_next_step():
    p = tg.Parameter(START.copy())
    opt = tg.optim.Adam([p], lr=0.1)
    rates = [0.1 * 0.9 ** t for t in range(STEPS)]
    got = []
    for t in range(STEPS):
        opt.param_groups[0]["lr"] = rates[t]
        got.extend(_run(opt, p, steps=1))
    np.testing.assert_allclose(got, _reference("Adam", rates), rtol=1e-13)


def test_optimizer_lr_reads_and_sets_every_groups_rate():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    with pytest.raises(tg.ConfigError, match="different learning rates"):
        opt.lr
    opt.lr = 0.2
    assert opt.lr == 0.2 and [g["lr"] for g in opt.param_groups] == [0.2, 0.2]


@pytest.mark.parametrize("groups, words", [
    (lambda p, q: [{"params": [p]}, {"params": [p, q]}], ["more than one parameter group"]),
    (lambda p, q: [{"params": [p], "lr": 0.1, "momentun": 0.9}], ["unknown settings", "momentun"]),
    (lambda p, q: [{"lr": 0.1}], ["group 0", "no 'params'"]),
    (lambda p, q: [{"params": []}], ["group 0", "empty"]),
    (lambda p, q: [{"params": [p], "lr": -1.0}], ["group 0", "lr", "-1.0"]),
    (lambda p, q: [{"params": [p]}, q], ["not a mix"]),
], ids=["shared_parameter", "unknown_setting", "no_params", "empty_group", "negative_group_lr", "mixed"])
def test_bad_parameter_groups_are_refused_with_a_clear_error(groups, words):
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    with pytest.raises(tg.ConfigError) as info:
        tg.optim.SGD(groups(p, q), lr=0.1)
    for word in words:
        assert word in str(info.value)


def test_a_group_without_lr_needs_a_default():
    with pytest.raises(tg.ConfigError, match="lr="):
        tg.optim.SGD([{"params": [tg.Parameter(START.copy())]}])


def test_a_step_with_a_bad_group_setting_changes_nothing():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.Adam([{"params": [p]}, {"params": [q]}], lr=0.1)
    _run(opt, p, steps=2)
    before = (p.data.copy(), q.data.copy(), opt.state_dict())
    opt.zero_grad()
    (_loss(p) + _loss(q)).backward()
    opt.param_groups[1]["betas"] = (0.9, 1.5)
    with pytest.raises(tg.ConfigError, match="group 1.*betas"):
        opt.step()
    np.testing.assert_array_equal(p.data, before[0])
    np.testing.assert_array_equal(q.data, before[1])
    assert opt.steps == 2 and opt.state_dict().keys() == before[2].keys()

# ---------------------------------------------------------------- state dicts


def test_state_dict_carries_every_groups_settings_and_a_resumed_run_continues_identically(tmp_path):
    def make(p, q):
        return tg.optim.AdamW([{"params": [p]}, {"params": [q], "weight_decay": 0.3}], lr=0.05)

    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy() * 2)
    opt = make(p, q)
    _run(opt, p, steps=5)
    opt.param_groups[1]["lr"] = 0.02
    tg.save_arrays(tmp_path / "opt.ckpt", opt.state_dict())
    saved = (p.data.copy(), q.data.copy())
    uninterrupted = _run(opt, p, steps=5)

    p2, q2 = tg.Parameter(saved[0]), tg.Parameter(saved[1])
    fresh = make(p2, q2)
    fresh.load_state_dict(tg.load_arrays(tmp_path / "opt.ckpt", expect=fresh.expected_state()))
    assert fresh.param_groups[1]["lr"] == 0.02 and fresh.param_groups[1]["weight_decay"] == 0.3
    assert fresh.param_groups[0]["betas"] == (0.9, 0.999)
    np.testing.assert_array_equal(_run(fresh, p2, steps=5), uninterrupted)


@pytest.mark.parametrize("change", [
    lambda d: d.update({"group.2.lr": np.array(0.1)}),
    lambda d: d.update({"group.0.lr": np.array(-0.1)}),
    lambda d: d.update({"group.0.betas": np.array([0.9, 0.99, 0.5])}),
    lambda d: d.update({"group.1.momentum": np.array(0.9)}),
    lambda d: d.update({"group.0.lr": np.array("fast")}),
], ids=["third_group", "negative_lr", "three_betas", "another_optimizers_setting", "not_a_number"])
def test_load_state_dict_refuses_a_group_mismatch_and_changes_nothing(change):
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.Adam([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    _run(opt, p, steps=2)
    bad = opt.state_dict()
    bad["0.m"] = bad["0.m"] + 1.0
    change(bad)
    before = opt.state_dict()
    groups = [dict(g) for g in opt.param_groups]
    with pytest.raises(tg.CheckpointError, match="Adam.load_state_dict"):
        opt.load_state_dict(bad)
    assert opt.param_groups == groups
    after = opt.state_dict()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_a_state_saved_without_group_settings_still_loads_and_keeps_the_current_ones():
    p = tg.Parameter(START.copy())
    opt = tg.optim.SGD([p], lr=0.1, momentum=0.5)
    _run(opt, p, steps=2)
    old_style = {k: v for k, v in opt.state_dict().items() if not k.startswith("group.")}
    fresh = tg.optim.SGD([tg.Parameter(p.data.copy())], lr=0.3, momentum=0.5)
    fresh.load_state_dict(old_style)
    assert fresh.steps == 2 and fresh.lr == 0.3

# ---------------------------------------------------------------- schedulers

sched = tg.optim.lr_scheduler

SCHEDULES = {
    "StepLR": (lambda o: sched.StepLR(o, step_size=3, gamma=0.5),
               lambda t, base: base * 0.5 ** (t // 3)),
    "CosineAnnealingLR": (lambda o: sched.CosineAnnealingLR(o, T_max=8, eta_min=0.01),
                          lambda t, base: 0.01 + (base - 0.01) * (1 + math.cos(math.pi * t / 8)) / 2),
    "LambdaLR": (lambda o: sched.LambdaLR(o, lambda t: 1 / (1 + t)), lambda t, base: base / (1 + t)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_schedule_sets_the_closed_form_rate_of_every_epoch_and_the_steps_follow_it(name):
    make, formula = SCHEDULES[name]
    p = tg.Parameter(START.copy())
    opt = tg.optim.Adam([p], lr=0.2)
    scheduler = make(opt)
    rates = [formula(t, 0.2) for t in range(STEPS)]
    assert opt.lr == rates[0]
    seen = []
    got = []
    for _ in range(STEPS):
        seen.append(opt.lr)
        got.extend(_run(opt, p, steps=1))
        scheduler.step()
    np.testing.assert_allclose(seen, rates, rtol=1e-14)
    assert scheduler.get_last_lr() == [opt.lr] and scheduler.last_epoch == STEPS
    np.testing.assert_allclose(got, _reference("Adam", rates), rtol=1e-13)


def test_a_schedule_follows_each_groups_own_initial_rate():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.SGD([{"params": [p]}, {"params": [q], "lr": 1.0}], lr=0.1)
    scheduler = sched.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(4):
        scheduler.step()
    np.testing.assert_allclose(scheduler.get_last_lr(), [0.1 * 0.01, 1.0 * 0.01], rtol=1e-15)


def test_lambda_lr_takes_one_function_per_group():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.SGD([{"params": [p]}, {"params": [q]}], lr=1.0)
    scheduler = sched.LambdaLR(opt, [lambda t: 0.5 ** t, lambda t: 1.0 + t])
    scheduler.step()
    assert scheduler.get_last_lr() == [0.5, 2.0]
    with pytest.raises(tg.ConfigError, match="one per parameter group"):
        sched.LambdaLR(opt, [lambda t: 1.0])


def _plateau_reference(metrics, lr, factor, patience, cooldown, threshold, mode="min"):
    """ReduceLROnPlateau as PyTorch documents it (relative threshold), written out."""
    best, bad, rest, out = (math.inf if mode == "min" else -math.inf), 0, 0, []
    for value in metrics:
        better = value < best * (1 - threshold) if mode == "min" else value > best * (1 + threshold)
        if better:
            best, bad = value, 0
        else:
            bad += 1
        if rest > 0:
            rest, bad = rest - 1, 0
        if bad > patience:
            lr, rest, bad = lr * factor, cooldown, 0
        out.append(lr)
    return out


@pytest.mark.parametrize("mode", ["min", "max"])
def test_reduce_lr_on_plateau_follows_the_written_out_rule(mode):
    rng = np.random.default_rng(3)
    metrics = (1 + 0.05 * rng.standard_normal(STEPS)).tolist()   # noise: rare improvements, plateaus
    p = tg.Parameter(START.copy())
    opt = tg.optim.SGD([p], lr=1.0)
    scheduler = sched.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=2, cooldown=1, threshold=0.01)
    got = []
    for value in metrics:
        scheduler.step(value)
        got.append(opt.lr)
    expected = _plateau_reference(metrics, 1.0, 0.5, 2, 1, 0.01, mode)
    assert got == expected and min(got) < 1.0


def test_reduce_lr_on_plateau_stops_at_min_lr_and_refuses_a_non_finite_metric():
    p = tg.Parameter(START.copy())
    opt = tg.optim.SGD([p], lr=1.0)
    scheduler = sched.ReduceLROnPlateau(opt, factor=0.1, patience=0, min_lr=0.05)
    for _ in range(5):
        scheduler.step(1.0)
    assert opt.lr == 0.05
    with pytest.raises(tg.ConfigError, match="nan"):
        scheduler.step(float("nan"))
    assert scheduler.last_epoch == 5


@pytest.mark.parametrize("name", sorted(SCHEDULES) + ["ReduceLROnPlateau"])
def test_a_scheduler_state_dict_resumes_the_same_rates(name, tmp_path):
    def make(opt):
        if name == "ReduceLROnPlateau":
            return sched.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return SCHEDULES[name][0](opt)

    def advance(scheduler, n, start):
        out = []
        for k in range(n):
            if name == "ReduceLROnPlateau":
                scheduler.step(1.0 / (1 + (start + k) % 3))
            else:
                scheduler.step()
            out.append(scheduler.get_last_lr())
        return out

    opt = tg.optim.SGD([tg.Parameter(START.copy())], lr=0.3)
    scheduler = make(opt)
    advance(scheduler, 7, 0)
    tg.save_arrays(tmp_path / "s.ckpt", {**scheduler.state_dict(), **{f"opt/{k}": v for k, v in opt.state_dict().items()}})
    uninterrupted = advance(scheduler, 6, 7)

    opt2 = tg.optim.SGD([tg.Parameter(START.copy())], lr=0.3)
    resumed = make(opt2)
    saved = tg.load_arrays(tmp_path / "s.ckpt")
    opt2.load_state_dict({k[4:]: v for k, v in saved.items() if k.startswith("opt/")})
    resumed.load_state_dict({k: v for k, v in saved.items() if not k.startswith("opt/")})
    assert advance(resumed, 6, 7) == uninterrupted


@pytest.mark.parametrize("bad", [
    {"last_epoch": np.array(3)},
    {"last_epoch": np.array(-2), "base_lrs": np.array([0.3])},
    {"last_epoch": np.array(3), "base_lrs": np.array([0.3, 0.1])},
    {"last_epoch": np.array(3.5), "base_lrs": np.array([0.3])},
    {"last_epoch": np.array(3), "base_lrs": np.array([0.3]), "best": np.array(1.0)},
], ids=["missing_entry", "negative_epoch", "two_groups", "fractional_epoch", "extra_entry"])
def test_a_scheduler_refuses_a_mismatched_state_and_changes_nothing(bad):
    opt = tg.optim.SGD([tg.Parameter(START.copy())], lr=0.3)
    scheduler = sched.StepLR(opt, step_size=2)
    scheduler.step()
    before = scheduler.state_dict()
    with pytest.raises(tg.CheckpointError, match="StepLR.load_state_dict"):
        scheduler.load_state_dict(bad)
    after = scheduler.state_dict()
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_a_schedule_that_would_set_a_negative_rate_is_refused_before_changing_any_group():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.SGD([{"params": [p]}, {"params": [q]}], lr=1.0)
    scheduler = sched.LambdaLR(opt, [lambda t: 1.0 - t, lambda t: 1.0 - 2 * t])
    with pytest.raises(tg.ConfigError, match="group 1 at epoch 1"):
        scheduler.step()
    assert [g["lr"] for g in opt.param_groups] == [1.0, 1.0] and scheduler.last_epoch == 0


@pytest.mark.parametrize("make, words", [
    (lambda o: sched.StepLR(o, step_size=0), ["StepLR", "step_size"]),
    (lambda o: sched.CosineAnnealingLR(o, T_max=2.5), ["CosineAnnealingLR", "T_max"]),
    (lambda o: sched.LambdaLR(o, 0.5), ["LambdaLR", "lr_lambda"]),
    (lambda o: sched.ReduceLROnPlateau(o, factor=1.0), ["ReduceLROnPlateau", "factor"]),
    (lambda o: sched.ReduceLROnPlateau(o, mode="lowest"), ["mode"]),
    (lambda o: sched.StepLR(object(), 2), ["StepLR", "optimizer"]),
], ids=["zero_step_size", "fractional_t_max", "lambda_not_callable", "factor_one", "bad_mode", "not_an_optimizer"])
def test_bad_scheduler_settings_are_refused(make, words):
    opt = tg.optim.SGD([tg.Parameter(START.copy())], lr=0.3)
    with pytest.raises(tg.ConfigError) as info:
        make(opt)
    for word in words:
        assert word in str(info.value)

# ---------------------------------------------------------------- against torch (optional)


def test_optimizers_and_schedulers_equal_torchs_over_twenty_steps_in_float64():
    torch = pytest.importorskip("torch", reason="torch is optional; the written-out algorithms are the oracle")
    cases = [
        ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.3}, "StepLR", {"step_size": 3, "gamma": 0.5}),
        ("Adagrad", {"lr": 0.4, "weight_decay": 0.2}, "CosineAnnealingLR", {"T_max": 8, "eta_min": 0.01}),
        ("Adam", {"lr": 0.1, "betas": (0.8, 0.99), "weight_decay": 0.5}, "LambdaLR",
         {"lr_lambda": lambda t: 1 / (1 + t)}),
        ("AdamW", {"lr": 0.1, "weight_decay": 0.5}, "StepLR", {"step_size": 4}),
        ("Adam", {"lr": 0.1}, "ReduceLROnPlateau", {"factor": 0.5, "patience": 1}),
    ]
    for kind, settings, schedule, options in cases:
        p = tg.Parameter(START.copy())
        q = torch.tensor(START.copy(), requires_grad=True)
        opt, topt = getattr(tg.optim, kind)([p], **settings), getattr(torch.optim, kind)([q], **settings)
        ours = getattr(sched, schedule)(opt, **options)
        theirs = getattr(torch.optim.lr_scheduler, schedule)(topt, **options)
        for step in range(STEPS):
            opt.zero_grad()
            loss = _loss(p)
            loss.backward()
            opt.step()
            topt.zero_grad()
            tloss = (torch.tensor(CURVATURE) * (q - 1.0) ** 2 / 2).sum() + torch.sin(q).sum()
            tloss.backward()
            topt.step()
            if schedule == "ReduceLROnPlateau":
                ours.step(round(loss.item(), 1))
                theirs.step(round(tloss.item(), 1))
            else:
                ours.step()
                theirs.step()
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=f"{kind} with {schedule}, step {step + 1}")
            np.testing.assert_allclose(opt.lr, topt.param_groups[0]["lr"], rtol=1e-12)


def test_the_repr_shows_a_non_zero_weight_decay_and_the_number_of_groups():
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    assert repr(tg.optim.SGD([p], lr=0.1, weight_decay=0.01)) == \
        "SGD(lr=0.1, momentum=0.0, weight_decay=0.01; 1 parameter, 4 values; 0 steps)"
    assert repr(tg.optim.Adam([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)) == \
        "Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-08; 2 groups; 2 parameters, 8 values; 0 steps)"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, decay", [(tg.optim.Adam, 0.0), (tg.optim.Adam, 0.1),
                                        (tg.optim.AdamW, 0.05)])
def test_adam_is_the_written_out_update_bit_for_bit(dtype, cls, decay):
    """Adam's update is the formula written out, the same operations in the same order (PyTorch's),
    so the same bits."""
    rng = np.random.default_rng(0)
    p = tg.Parameter(rng.normal(size=(7, 5)).astype(dtype))
    expected, m, v = p.data.copy(), np.zeros((7, 5), dtype), np.zeros((7, 5), dtype)
    opt = cls([p], lr=0.01, weight_decay=decay)
    for t in range(1, 6):
        g = rng.normal(size=(7, 5)).astype(dtype)
        p.grad = g.copy()
        opt.step()
        if cls is tg.optim.AdamW:
            expected *= 1 - 0.01 * decay
        elif decay:
            g = g + decay * expected
        m *= 0.9
        m += (1 - 0.9) * g
        v *= 0.999
        v += (1 - 0.999) * g * g
        # PyTorch's order: lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        expected -= 0.01 / (1 - 0.9 ** t) * (m / (np.sqrt(v) / math.sqrt(1 - 0.999 ** t) + 1e-8))
        np.testing.assert_array_equal(p.data, expected)


@pytest.mark.parametrize("make", [lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: tg.optim.Adam(ps, lr=0.1),
                                  lambda ps: tg.optim.Adagrad(ps, lr=0.1)],
                         ids=["SGD-momentum", "Adam", "Adagrad"])
def test_state_of_a_parameter_whose_data_changed_shape_is_refused(make):
    """``p.data = ...`` of another shape after the optimizer made its state: momentum (3,)
    broadcast over a (2, 3) parameter would be a silently wrong update, and Adam's in-place
    sums a bare numpy error.  The step names the state and changes nothing."""
    p = tg.tensor(np.ones(3), requires_grad=True, name="w")
    opt = make([p])
    p.grad = np.ones(3)
    opt.step()
    p.data = np.ones((2, 3))
    p.grad = np.ones((2, 3))
    state = {k: v.copy() for k, v in opt.state[0].items()}
    with pytest.raises(tg.ShapeError, match=r"state '\w+' of parameter 0 'w' has shape \(3,\), "
                                            r"the parameter has \(2, 3\)"):
        opt.step()
    np.testing.assert_array_equal(p.data, np.ones((2, 3)))
    assert opt.steps == 1 and all(np.array_equal(opt.state[0][k], v) for k, v in state.items())


@pytest.mark.parametrize("cls", [tg.optim.Adam, tg.optim.AdamW])
def test_adam_counts_each_parameters_own_updates_for_its_bias_correction(cls):
    # was: the bias correction used the optimizer's step count, so a parameter without a
    # gradient for its first 3 steps got 0.58 of PyTorch's first update (m / (1 - b1^4) ...)
    lr, eps = 0.1, 1e-8
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = cls([p, q], lr=lr, weight_decay=0.0)
    for _ in range(3):
        p.grad, q.grad = _gradient(p.data), None
        opt.step()
    np.testing.assert_array_equal(q.data, START)
    g = _gradient(q.data)
    p.grad, q.grad = _gradient(p.data), g.copy()
    opt.step()
    # PyTorch's per-parameter step: q's first update has m_hat = g, v_hat = g**2
    np.testing.assert_allclose(q.data, START - lr * g / (np.abs(g) + eps), rtol=0, atol=1e-15)
    state = opt.state_dict()
    assert state["steps"] == 4 and state["0.step"] == 4 and state["1.step"] == 1


def test_adam_resumes_each_parameters_count_and_reads_a_state_saved_before_it(tmp_path):
    def run(opt, p, q, first, steps):
        for k in range(first, steps):
            p.grad = _gradient(p.data)
            q.grad = None if k < 2 else _gradient(q.data) * 0.5
            opt.step()
    p, q = tg.Parameter(START.copy()), tg.Parameter(START.copy())
    opt = tg.optim.Adam([p, q], lr=0.05)
    run(opt, p, q, 0, 4)
    tg.save_arrays(tmp_path / "opt.ckpt", opt.state_dict())
    saved = p.data.copy(), q.data.copy()
    run(opt, p, q, 4, 8)
    p2, q2 = tg.Parameter(saved[0]), tg.Parameter(saved[1])
    fresh = tg.optim.Adam([p2, q2], lr=0.05)
    fresh.load_state_dict(tg.load_arrays(tmp_path / "opt.ckpt", expect=fresh.expected_state()))
    run(fresh, p2, q2, 4, 8)
    np.testing.assert_array_equal(p2.data, p.data)
    np.testing.assert_array_equal(q2.data, q.data)

    # a state without the counts (saved before they existed) counts every parameter's updates
    # as the optimizer's steps, as the run that saved it did
    old = {k: v for k, v in opt.state_dict().items() if not k.endswith(".step")}
    other = tg.optim.Adam([tg.Parameter(START.copy()), tg.Parameter(START.copy())], lr=0.05)
    other.load_state_dict(old)
    assert other.state_dict()["1.step"] == 8

    before = other.state_dict()
    for bad in ({"1.step": np.array(9)}, {"1.step": np.array(-1)}, {"1.step": np.array(1.5)}):
        with pytest.raises(tg.CheckpointError, match="Adam.load_state_dict.*'1.step'"):
            other.load_state_dict({**old, **bad})
        after = other.state_dict()
        assert all(np.array_equal(after[k], before[k]) for k in before)


def test_a_state_of_one_group_is_refused_by_an_optimizer_of_two_and_changes_nothing():
    # was: loaded silently, group 0 taking the saved settings and group 1 keeping its own
    # (lr 0.5, momentum 0 where the saved run used 0.1 and 0.9); torch refuses it too
    p, q = tg.Parameter(START.copy()), tg.Parameter(START * 2)
    one = tg.optim.SGD([p, q], lr=0.1, momentum=0.9)
    p.grad, q.grad = _gradient(p.data), _gradient(q.data)
    one.step()
    two = tg.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5, "momentum": 0.0}], lr=0.01,
                       momentum=0.5)
    groups = [dict(g) for g in two.param_groups]
    with pytest.raises(tg.CheckpointError, match=r"of 1 parameter group \(\[2\] parameters\), "
                                                 r"this one has 2 groups \(\[1, 1\] parameters\)"):
        two.load_state_dict(one.state_dict())
    assert two.param_groups == groups and two.steps == 0 and two.state == [{}, {}]
    unsized = {k: v for k, v in one.state_dict().items() if k != "params"}   # saved before it was
    with pytest.raises(tg.CheckpointError, match=r"groups \[0\], this optimizer has 2 groups"):
        two.load_state_dict(unsized)
    assert two.param_groups == groups and two.steps == 0 and two.state == [{}, {}]
    # a state saved before groups existed (no settings at all) still loads into either
    two.load_state_dict({k: v for k, v in unsized.items() if not k.startswith("group.")})
    assert two.param_groups[1]["lr"] == 0.5 and two.steps == 1


@pytest.mark.parametrize("optimizer_first", [True, False], ids=["optimizer_loaded_first",
                                                                 "scheduler_made_first"])
def test_a_resumed_warmup_schedule_gives_the_uninterrupted_rates_whatever_the_load_order(
        optimizer_first):
    # was: with the optimizer's state loaded before the scheduler was made, making it set the
    # rate of epoch 0 (0.16 = 0.8 x 0.2) and load_state_dict left it there for the next step
    warmup = lambda epoch: min(1.0, (epoch + 1) / 5)     # noqa: E731

    def run(resume_at=None):
        p = tg.Parameter(START.copy())
        opt = tg.optim.SGD([p], lr=1.0)
        sched = tg.optim.lr_scheduler.LambdaLR(opt, warmup)
        rates = []
        for k in range(8):
            if k == resume_at:
                saved = opt.state_dict(), sched.state_dict(), p.data.copy()
                p = tg.Parameter(saved[2])
                opt = tg.optim.SGD([p], lr=1.0)
                if optimizer_first:
                    opt.load_state_dict(saved[0])
                sched = tg.optim.lr_scheduler.LambdaLR(opt, warmup)
                if not optimizer_first:
                    opt.load_state_dict(saved[0])
                sched.load_state_dict(saved[1])
            rates.append(opt.param_groups[0]["lr"])
            p.grad = _gradient(p.data)
            opt.step()
            sched.step()
        return rates, p.data

    (rates, data), (resumed_rates, resumed) = run(), run(resume_at=3)
    assert resumed_rates == rates
    np.testing.assert_array_equal(resumed, data)


@pytest.mark.parametrize("make", [lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: tg.optim.Adam(ps, lr=0.1),
                                  lambda ps: tg.optim.AdamW(ps, lr=0.1),
                                  lambda ps: tg.optim.Adagrad(ps, lr=0.1)],
                         ids=["SGD-momentum", "Adam", "AdamW", "Adagrad"])
@pytest.mark.parametrize("was, now", [(np.float32, np.float64), (np.float64, np.float32)])
def test_state_of_a_parameter_whose_data_changed_dtype_is_refused(make, was, now):
    """``p.data = ...`` of another dtype after the optimizer made its state: the float32 state
    of a float64 parameter rounded every later update to float32 without a word (and the other
    way the float64 state's update was cast into the float32 parameter), and a state_dict of
    such a state no longer loaded into the same optimizer.  The step names the optimizer, the
    parameter, the state and both dtypes, and changes nothing."""
    p = tg.tensor(np.ones(3, dtype=was), requires_grad=True, name="w")
    opt = make([p])
    p.grad = np.ones(3, dtype=was)
    opt.step()
    p.data = np.full(3, 0.5, dtype=now)
    p.grad = np.ones(3, dtype=now)
    state = {k: v.copy() for k, v in opt.state[0].items()}
    who = type(opt).__name__
    with pytest.raises(tg.DTypeError, match=rf"{who}.step: the state '\w+' of parameter 0 'w' "
                                            rf"has dtype {np.dtype(was)}, the parameter has "
                                            rf"{np.dtype(now)}"):
        opt.step()
    assert p.data.dtype == now and np.array_equal(p.data, np.full(3, 0.5))
    assert opt.steps == 1 and all(np.array_equal(opt.state[0][k], v) and opt.state[0][k].dtype == v.dtype
                                  for k, v in state.items())


@pytest.mark.parametrize("param, grad", [(np.float32, np.float64), (np.float64, np.float32)])
def test_sgd_momentum_holds_its_velocity_in_the_parameters_dtype(param, grad):
    """A gradient of another float dtype than its parameter (left over when the parameter's
    .data was replaced by one of another dtype: ``p.grad = ...`` itself refuses it) made the
    velocity of its dtype: a float64 parameter's velocity rounded to float32 (and a float32
    parameter's state saved as float64), a state its own load_state_dict refused."""
    p = tg.tensor(np.array([1.0, 2.0, 3.0], dtype=param), requires_grad=True, name="w")
    opt = tg.optim.SGD([p], lr=0.1, momentum=0.9)
    steps = [np.array([0.1, 0.2, 0.3]), np.array([1 / 3, 0.7, -0.2]), np.array([2 / 7, 0.0, 1.0])]
    expected, v = np.array([1.0, 2.0, 3.0], dtype=param), None
    for g in steps:
        held = p.data
        p.data = np.zeros(3, dtype=grad)      # the gradient set while the data had its dtype,
        p.grad = g.astype(grad)
        p.data = held                         # then the data put back
        opt.step()
        g = g.astype(grad).astype(param)      # the gradient as the parameter holds it
        v = g.copy() if v is None else (0.9 * v + g).astype(param)
        expected = (expected - 0.1 * v).astype(param)
    assert opt.state[0]["velocity"].dtype == param and p.dtype == param
    np.testing.assert_array_equal(opt.state[0]["velocity"], v)
    np.testing.assert_array_equal(p.data, expected)
    fresh = tg.optim.SGD([tg.tensor(p.data.copy(), requires_grad=True)], lr=0.1, momentum=0.9)
    fresh.load_state_dict(opt.state_dict())         # its own state loads back


@pytest.mark.parametrize("saved, loaded", [(tg.optim.Adam, tg.optim.AdamW),
                                           (tg.optim.AdamW, tg.optim.Adam)])
def test_a_state_of_adam_is_refused_by_adamw_and_the_other_way(saved, loaded):
    """Adam and AdamW keep the same arrays and settings, so one's state loaded into the other
    without a word, and its weight_decay then meant the other algorithm's (L2 on the gradient
    against decoupled decay).  A state names its optimizer; another's is refused, changing
    nothing; a state saved before it named one loads as before."""
    p = tg.tensor(START.copy(), requires_grad=True, name="w")
    source = saved([p], lr=0.1, weight_decay=0.1)
    p.grad = _gradient(p.data)
    source.step()
    state = source.state_dict()
    q = tg.tensor(START.copy(), requires_grad=True)
    target = loaded([q], lr=0.01, weight_decay=0.0)
    with pytest.raises(tg.CheckpointError, match=rf"{loaded.__name__}.load_state_dict: the state "
                                                 rf"is of {saved.__name__}, not {loaded.__name__}"):
        target.load_state_dict(state)
    assert target.steps == 0 and target.state == [{}] and target.param_groups[0]["lr"] == 0.01
    target.load_state_dict({k: v for k, v in state.items() if k != "optimizer"})     # an old state
    assert target.steps == 1
    same = saved([tg.tensor(START.copy(), requires_grad=True)], lr=0.01)
    same.load_state_dict(state)
    assert same.param_groups[0]["weight_decay"] == 0.1


@pytest.mark.parametrize("make", [lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: tg.optim.Adam(ps, lr=0.1),
                                  lambda ps: tg.optim.AdamW(ps, lr=0.1),
                                  lambda ps: tg.optim.Adagrad(ps, lr=0.1)],
                         ids=["SGD-momentum", "Adam", "AdamW", "Adagrad"])
def test_a_step_when_no_parameter_has_a_gradient_changes_nothing_not_even_steps(make):
    # was: such a step updated nothing but counted one more step (opt.steps 1 after a call
    # that changed no parameter), as rnn.Trainer refuses to do
    p, q = tg.Parameter(START.copy()), tg.Parameter(START[::-1].copy())
    opt = make([p, q])
    opt.step()
    assert opt.steps == 0 and opt.state == [{}, {}]
    np.testing.assert_array_equal(p.data, START)
    p.grad = _gradient(p.data)
    opt.step()
    before = opt.state_dict(), p.data.copy(), q.data.copy()
    opt.zero_grad()
    opt.step()
    after = opt.state_dict()
    assert opt.steps == 1 and after.keys() == before[0].keys()
    assert all(np.array_equal(after[k], before[0][k]) for k in after)
    np.testing.assert_array_equal(p.data, before[1])
    np.testing.assert_array_equal(q.data, before[2])


@pytest.mark.parametrize("cls", [tg.optim.Adam, tg.optim.AdamW])
def test_a_state_whose_count_is_zero_beside_its_moments_is_refused_and_changes_nothing(cls):
    # was: loaded, so the next update corrected the moments of 4 updates as a first update's
    # (1 - b1 ** 1 for 1 - b1 ** 5), with no word
    p = tg.Parameter(START.copy())
    opt = cls([p], lr=0.05)
    for _ in range(4):
        p.grad = _gradient(p.data)
        opt.step()
    state = opt.state_dict()
    other = cls([tg.Parameter(START.copy())], lr=0.05)
    with pytest.raises(tg.CheckpointError, match=rf"{cls.__name__}.load_state_dict: '0.step' is 0, "
                                                 r"but parameter 0 holds the state \['0.m', '0.v'\]"):
        other.load_state_dict({**state, "0.step": np.array(0)})
    assert other.steps == 0 and other.state == [{}]


@pytest.mark.parametrize("saved_over, loaded_over", [(4, 5), (3, 2)], ids=["one_more", "one_fewer"])
def test_a_state_of_an_optimizer_over_another_number_of_parameters_is_refused(saved_over,
                                                                             loaded_over):
    # was: loaded silently, the state of parameter k going to parameter k of the other list:
    # 4 parameters' Adam moments into an optimizer over 5 (one inserted before the last, all of
    # one shape, the moments of the third going to the new one), and a state of 3 parameters
    # whose last had no gradient yet into an optimizer over 2; torch refuses both
    saved = [tg.Parameter(START * (k + 1)) for k in range(saved_over)]
    opt = tg.optim.Adam(saved, lr=0.1)
    for k, p in enumerate(saved):
        p.grad = _gradient(p.data) if k < 2 or saved_over == 4 else None
    opt.step()
    other = tg.optim.Adam([tg.Parameter(START.copy()) for _ in range(loaded_over)], lr=0.2)
    before = other.state_dict()
    with pytest.raises(tg.CheckpointError, match=rf"Adam.load_state_dict: the state is of an "
                                                 rf"optimizer over {saved_over} parameters.*this "
                                                 rf"one has {loaded_over}"):
        other.load_state_dict(opt.state_dict())
    after = other.state_dict()
    assert other.state == [{}] * loaded_over and other.lr == 0.2
    assert all(np.array_equal(after[k], before[k]) for k in before)
    # a state saved before the counts were written loads as before (nothing to check it by)
    if saved_over < loaded_over:
        other.load_state_dict({k: v for k, v in opt.state_dict().items() if k != "params"})
        assert other.steps == 1


@pytest.mark.parametrize("bad", [[[1, 2], [3]], "SGD", np.zeros(64)])
def test_an_optimizer_name_that_is_no_name_array_is_refused_naming_the_entry(bad):
    # a ragged 'optimizer' entry was a bare numpy ValueError ("inhomogeneous shape")
    p = tg.tensor(START.copy(), requires_grad=True)
    opt = tg.optim.SGD([p], lr=0.1)
    with pytest.raises(tg.CheckpointError, match=r"SGD.load_state_dict: 'optimizer' must be "):
        opt.load_state_dict({"steps": np.array(0), "optimizer": bad})
    assert opt.steps == 0 and opt.state == [{}]


@pytest.mark.parametrize("make", [lambda ps: tg.optim.Adam(ps, lr=0.1),
                                  lambda ps: tg.optim.AdamW(ps, lr=0.1),
                                  lambda ps: tg.optim.Adagrad(ps, lr=0.1)],
                         ids=["Adam", "AdamW", "Adagrad"])
def test_an_eps_that_is_zero_in_the_parameters_dtype_is_refused_before_it_makes_nan(make):
    """Adam's eps=1e-8 (Adagrad's 1e-10) is 0 in float16: the first step of a float16
    parameter with a zero gradient entry updated it by 0 / 0 and made every entry NaN, without
    a word.  Refused when made, and at a step after .data became float16; an eps the dtype
    holds works."""
    p = tg.tensor(np.array([1.0, 2.0], dtype=np.float16), requires_grad=True, name="w")
    with pytest.raises(tg.ConfigError, match=r"eps=1e-\d+ is 0 in float16, the dtype of "
                                             r"parameter 'w' of shape \(2,\).*0 / 0 = NaN"):
        make([p])
    q = tg.tensor(np.array([1.0, 2.0]), requires_grad=True, name="w")
    opt = make([q])
    q.data = q.data.astype(np.float16)
    q.grad = np.array([0.0, 1.0], dtype=np.float16)
    with pytest.raises(tg.ConfigError, match=r"step: .*is 0 in float16"):
        opt.step()
    assert q.data.tolist() == [1.0, 2.0]
    fine = tg.optim.Adam([p], lr=0.1, eps=1e-4)
    p.grad = np.array([0.0, 1.0], dtype=np.float16)
    fine.step()
    assert np.isfinite(p.data).all() and p.data[0] == 1.0 and p.data[1] < 2.0


@pytest.mark.parametrize("cls", [tg.optim.Adam, tg.optim.AdamW])
def test_adam_moves_a_float16_parameter_whose_bias_corrected_moment_float16_cannot_hold(cls):
    # the first update of gradient 300: v = 0.001 * 300^2 = 90, v_hat = v / 0.001 = 9e4, beyond
    # float16's 65504: sqrt(v_hat) was inf and the entry did not move at all (a numpy warning
    # at most), where Adam (and PyTorch's float16 Adam) moves it by lr, as the others
    g = np.array([300.0, 1.0, -0.5, 2000.0], np.float16)
    p = tg.Parameter(np.zeros(4, np.float16))
    opt = cls([p], lr=0.01, eps=1e-4, weight_decay=0.0)
    for t in range(1, 4):
        p.grad = g.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # no overflow on the way either
            opt.step()
        np.testing.assert_allclose(p.data, -0.01 * t * np.sign(g), rtol=3e-3)
        assert p.dtype == np.float16 and opt.state[0]["v"].dtype == np.float16


@pytest.mark.parametrize("cls, key, value", [(tg.optim.SGD, "nesterov", True),
                                             (tg.optim.SGD, "dampening", 0.5),
                                             (tg.optim.Adam, "amsgrad", True),
                                             (tg.optim.AdamW, "maximize", True),
                                             (tg.optim.Adagrad, "lr_decay", 0.1)])
def test_a_torch_setting_added_to_a_group_after_the_optimizer_was_made_is_refused(cls, key, value):
    # refused when the optimizer is made, but a torch habit such as
    # `for g in opt.param_groups: g["nesterov"] = True` was then ignored without a word: SGD
    # stepped as plain momentum SGD (maximize: it descended)
    p = tg.Parameter(START.copy())
    opt = cls([p], lr=0.1)
    opt.param_groups[0][key] = value
    p.grad = np.ones_like(START)
    with pytest.raises(tg.ConfigError, match=rf"step: parameter group 0: has unknown settings "
                                             rf"\['{key}'\].*{cls.__name__} takes"):
        opt.step()
    np.testing.assert_array_equal(p.data, START)
    assert opt.steps == 0 and opt.state == [{}]
    del opt.param_groups[0][key]
    opt.step()
    assert opt.steps == 1


def test_a_setting_removed_from_a_group_is_named_not_a_bare_key_error():
    p = tg.Parameter(START.copy())
    opt = tg.optim.SGD([p], lr=0.1, momentum=0.9)
    del opt.param_groups[0]["momentum"]
    p.grad = np.ones_like(START)
    with pytest.raises(tg.ConfigError, match=r"lacks the settings \['momentum'\]"):
        opt.step()
    np.testing.assert_array_equal(p.data, START)


@pytest.mark.parametrize("cls", [tg.optim.Adam, tg.optim.AdamW])
def test_adam_says_when_a_float16_second_moment_underflows(cls):
    # (1 - b2) g^2 is 1e-9 for g = 1e-3: 0 in float16, so the update was lr m / eps, 11x Adam's
    # step here (as in PyTorch's float16 Adam), without a word
    p = tg.Parameter(np.zeros(2, np.float16), name="w")
    opt = cls([p], lr=0.01, eps=1e-4, weight_decay=0.0)
    p.grad = np.array([1e-3, 0.5], np.float16)
    with pytest.warns(RuntimeWarning, match=r"float16 parameter 'w' of shape \(2,\): the second "
                                            r"moment of gradient entries below about 5.5e-03 "
                                            r"underflows to 0"):
        opt.step()
    assert abs(p.data[0]) > 5 * 0.01      # the step it warns of
    q = tg.Parameter(np.zeros(2, np.float32))
    opt = cls([q], lr=0.01, weight_decay=0.0)
    q.grad = np.array([1e-3, 0.5], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
