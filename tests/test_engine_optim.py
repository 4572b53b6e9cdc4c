"""Optimizers and gradient clipping: each optimizer reaches the known minimum of
a quadratic, single steps match their closed forms, clipping rescales to the
requested norm, and a saved optimizer state resumes training exactly.
"""

import math

import numpy as np
import pytest

import tinygraph as tg

CURVATURE = np.array([1.0, 3.0, 0.5, 2.0])
MINIMUM = np.array([1.5, -2.0, 0.25, 3.0])


def _quadratic(p):
    """0.5 * sum(a * (p - m)^2): minimum m, gradient a * (p - m)."""
    d = p - MINIMUM
    return 0.5 * (CURVATURE * d * d).sum()


def _train(make_optimizer, steps, p=None):
    p = p if p is not None else tg.Parameter(np.zeros(4))
    opt = make_optimizer([p])
    for _ in range(steps):
        opt.zero_grad()
        _quadratic(p).backward()
        opt.step()
    return p


@pytest.mark.parametrize("make_optimizer,steps,tol", [
    (lambda ps: tg.optim.SGD(ps, lr=0.3), 200, 1e-9),
    (lambda ps: tg.optim.SGD(ps, lr=0.05, momentum=0.9), 500, 1e-9),
    (lambda ps: tg.optim.Adagrad(ps, lr=1.0), 500, 1e-6),
    (lambda ps: tg.optim.Adam(ps, lr=0.1), 1000, 1e-4),
], ids=["sgd", "sgd_momentum", "adagrad", "adam"])
def test_optimizer_reaches_the_minimum_of_a_quadratic(make_optimizer, steps, tol):
    p = _train(make_optimizer, steps)
    np.testing.assert_allclose(p.data, MINIMUM, atol=tol)


def _one_grad(g):
    p = tg.Parameter(np.zeros_like(g))
    p.grad = np.array(g, dtype=np.float64)
    return p


G1 = np.array([0.3, -2.0, 1e-2, 50.0])
G2 = np.array([-1.0, 0.5, 2.0, -3.0])


def test_sgd_step_is_minus_lr_times_gradient():
    p = _one_grad(G1)
    tg.optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, -0.1 * G1, rtol=1e-15)


def test_sgd_momentum_accumulates_velocity():
    p = _one_grad(G1)
    opt = tg.optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    p.grad = G2.copy()
    opt.step()
    np.testing.assert_allclose(p.data, -0.1 * G1 - 0.1 * (0.9 * G1 + G2), rtol=1e-14)


def test_adagrad_steps_divide_by_root_of_summed_squares():
    p = _one_grad(G1)
    opt = tg.optim.Adagrad([p], lr=0.5)
    opt.step()
    p.grad = G2.copy()
    opt.step()
    eps = 1e-10
    expected = (-0.5 * G1 / (np.abs(G1) + eps)
                - 0.5 * G2 / (np.sqrt(G1 ** 2 + G2 ** 2) + eps))
    np.testing.assert_allclose(p.data, expected, rtol=1e-12)


def test_adam_first_step_is_lr_times_sign_of_gradient():
    p = _one_grad(G1)
    tg.optim.Adam([p], lr=0.01).step()
    np.testing.assert_allclose(p.data, -0.01 * np.sign(G1), rtol=1e-5)


def test_adam_second_step_uses_bias_corrected_moments():
    p = _one_grad(G1)
    opt = tg.optim.Adam([p], lr=0.01, betas=(0.8, 0.9))
    opt.step()
    p.grad = G2.copy()
    opt.step()
    m = (0.2 * 0.8 * G1 + 0.2 * G2) / (1 - 0.8 ** 2)
    v = (0.1 * 0.9 * G1 ** 2 + 0.1 * G2 ** 2) / (1 - 0.9 ** 2)
    expected = -0.01 * G1 / (np.abs(G1) + 1e-8) - 0.01 * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12)


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.5),
    lambda ps: tg.optim.Adagrad(ps, lr=0.1),
    lambda ps: tg.optim.Adam(ps, lr=0.1),
], ids=["sgd", "adagrad", "adam"])
def test_parameter_without_gradient_is_left_alone(make_optimizer):
    moved, still = _one_grad(G1), tg.Parameter(np.ones(3))
    make_optimizer([moved, still]).step()
    np.testing.assert_array_equal(still.data, np.ones(3))
    assert not np.array_equal(moved.data, np.zeros(4))


def test_optimizer_zero_grad_clears_its_parameters():
    p = _one_grad(G1)
    opt = tg.optim.SGD([p], lr=0.1)
    opt.zero_grad()
    assert p.grad is None


# ---------------------------------------------------------------- clipping

def test_clip_grad_norm_returns_the_norm_before_and_scales_to_max_norm():
    a, b = _one_grad(G1), _one_grad(G2[:3])
    norm = np.sqrt(np.sum(G1 ** 2) + np.sum(G2[:3] ** 2))
    assert tg.clip_grad_norm([a, b], max_norm=2.0) == pytest.approx(norm, rel=1e-14)
    after = np.sqrt(np.sum(a.grad ** 2) + np.sum(b.grad ** 2))
    assert after == pytest.approx(2.0, rel=1e-10)
    np.testing.assert_allclose(a.grad, G1 * 2.0 / norm, rtol=1e-10)   # direction kept


def test_clip_grad_norm_below_max_norm_changes_nothing():
    p = _one_grad(G2)
    norm = tg.clip_grad_norm([p], max_norm=100.0)
    assert norm == pytest.approx(np.linalg.norm(G2), rel=1e-14)
    np.testing.assert_array_equal(p.grad, G2)


@pytest.mark.parametrize("grads", [[G2], [np.array([np.inf, 1.0])], [np.array([np.nan])]],
                         ids=["finite", "inf", "nan"])
def test_clip_grad_norm_with_an_infinite_max_norm_only_measures(grads):
    # PyTorch's idiom for logging the norm; it was refused as "max_norm must be positive"
    ps = [_one_grad(g.copy()) for g in grads]
    norm = tg.clip_grad_norm(ps, max_norm=math.inf)
    expected = np.sqrt(sum(np.sum(g ** 2) for g in grads))
    assert norm == pytest.approx(expected, rel=1e-14, nan_ok=True)
    for p, g in zip(ps, grads):
        np.testing.assert_array_equal(p.grad, g)     # left as it was, NaN and inf included


def test_clip_grad_norm_skips_parameters_without_gradient():
    p, q = _one_grad(np.array([3.0, 4.0])), tg.Parameter(np.ones(2))
    assert tg.clip_grad_norm([p, q], max_norm=1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad, [0.6, 0.8], rtol=1e-10)
    assert q.grad is None


@pytest.mark.parametrize("dtype, max_norm", [(np.float64, 1.0), (np.float32, 1.0), (np.float64, 1e-320)],
                         ids=["float64", "float32", "float64-subnormal-scale"])
@pytest.mark.parametrize("layout", ["one-array", "overlapping-views", "tensor-grad"])
def test_clip_grad_norm_scales_memory_two_gradients_share_once(layout, max_norm, dtype):
    # p.grad = q.grad = buf: the norm counts each parameter's gradient (buf twice, as
    # PyTorch's), and each entry of buf is scaled once; it was scaled once per parameter
    # holding it (buf [3, 4] came out [0.06, 0.08], a norm of 0.14 for max_norm 1), as
    # PyTorch's clip_grad_norm_ still does
    p, q = tg.Parameter(np.zeros(2, dtype)), tg.Parameter(np.zeros(2, dtype))
    buf = np.array([3.0, 4.0, 12.0], dtype)
    if layout == "one-array":
        p.grad = q.grad = buf[:2]
    elif layout == "overlapping-views":
        p.grad, q.grad = buf[:2], buf[1:]
    else:
        p.grad = q.grad = tg.tensor(buf[:2])
    before = [np.array(t.grad, np.float64) for t in (p, q)]
    norm = tg.clip_grad_norm([p, q], max_norm=max_norm)
    want = math.sqrt(sum(np.sum(g * g) for g in before))
    assert norm == pytest.approx(want, rel=1e-6)
    for t, g in zip((p, q), before):
        np.testing.assert_allclose(np.asarray(t.grad, np.float64), g / want * max_norm,
                                   rtol=1e-6, atol=1e-322)   # subnormals: a few units apart


def test_clip_grad_norm_zeroes_non_finite_gradients():
    p = _one_grad(np.array([np.inf, 1.0]))
    assert not np.isfinite(tg.clip_grad_norm([p], max_norm=1.0))
    np.testing.assert_array_equal(p.grad, [0.0, 0.0])


@pytest.mark.parametrize("max_norm", [1.0, math.inf])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_error_if_nonfinite_raises_naming_the_parameter_and_changes_nothing(
        bad, max_norm):
    # PyTorch's clip_grad_norm_(..., error_if_nonfinite=True): it was a bare TypeError
    # (unexpected keyword), so a NaN gradient could only be zeroed, and an optimizer step then
    # moved the parameters by its momentum alone
    p, q = _one_grad(np.array([3.0, 4.0])), _one_grad(np.array([1.0, bad]))
    q.name = "W"
    with pytest.raises(tg.AnomalyError, match=rf"clip_grad_norm: .*parameter 1 'W' \(2,\) holds "
                                              rf"{bad}; no gradient was changed"):
        tg.clip_grad_norm([p, q], max_norm, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad, [3.0, 4.0])
    np.testing.assert_array_equal(q.grad, [1.0, bad])
    assert tg.clip_grad_norm([p], 1.0, error_if_nonfinite=True) == 5.0
    with pytest.raises(tg.ConfigError, match="error_if_nonfinite must be True or False"):
        tg.clip_grad_norm([p], 1.0, error_if_nonfinite="yes")


@pytest.mark.parametrize("scale", [1e200, 1e-200], ids=["huge", "tiny"])
def test_clip_grad_norm_of_finite_gradients_beyond_the_range_of_their_squares(scale):
    # the squares of [3e200, 4e200] overflow float64: the norm was inf, and the finite
    # gradients were zeroed as if non-finite (an optimizer step then saw none of them); the
    # squares of [3e-200, 4e-200] underflow: the norm was 0.0
    p, q = _one_grad(np.array([3.0, 0.0]) * scale), _one_grad(np.array([4.0]) * scale)
    norm = tg.clip_grad_norm([p, q], max_norm=math.inf)
    assert norm == pytest.approx(5 * scale, rel=1e-15, abs=0)
    if scale > 1:
        assert tg.clip_grad_norm([p, q], max_norm=1.0) == pytest.approx(5 * scale, rel=1e-15)
        np.testing.assert_allclose(np.concatenate([p.grad, q.grad]), [0.6, 0.0, 0.8], rtol=1e-12)


@pytest.mark.parametrize("size,max_norm", [(1.0, 0.5), (1e-6, 1e-7), (1e-150, 1e-160),
                                           (1.0, 1e-300), (1e10, 1e-300), (1e300, 1e-10)],
                         ids=["unit", "1e-6", "tiny", "max_norm_1e-300", "scale_subnormal", "huge"])
def test_clip_grad_norm_clips_to_max_norm_exactly_at_any_scale(size, max_norm):
    # was: max_norm / (total + 1e-12): gradients of norm 1e-150 clipped to 1e-160 came out of
    # norm 1e-298 (scaled by 1e-148, not 1e-10); a norm of 1e-6 clipped to 1e-7 was 1e-6 short
    # relatively; a scale below float64's normal range (1e-310) kept 3 digits
    grads = [np.array([3.0, 0.0]) * size, np.array([4.0]) * size]
    p, q = _one_grad(grads[0].copy()), _one_grad(grads[1].copy())
    assert tg.clip_grad_norm([p, q], max_norm) == pytest.approx(5 * size, rel=1e-15)
    np.testing.assert_allclose(np.concatenate([p.grad, q.grad]),
                               np.array([0.6, 0.0, 0.8]) * max_norm, rtol=1e-14, atol=0)
    assert tg.clip_grad_norm([p, q], np.inf) == pytest.approx(max_norm, rel=1e-14)


# ---------------------------------------------------------------- state round trip

OPTIMIZERS = [
    lambda ps: tg.optim.SGD(ps, lr=0.05, momentum=0.9),
    lambda ps: tg.optim.Adagrad(ps, lr=0.3),
    lambda ps: tg.optim.Adam(ps, lr=0.05),
]


def _losses(p, opt, steps):
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = _quadratic(p)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


class Point(tg.Module):
    def __init__(self, start):
        self.p = tg.Parameter(np.full(4, start))


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS, ids=["sgd_momentum", "adagrad", "adam"])
def test_resume_from_saved_model_and_optimizer_continues_identically(tmp_path, make_optimizer):
    model = Point(0.0)
    opt = make_optimizer(model.parameters())
    _losses(model.p, opt, 5)
    model.save(tmp_path / "model.npz")
    tg.save_arrays(tmp_path / "opt.npz", opt.state_dict())
    uninterrupted = _losses(model.p, opt, 5)

    fresh = Point(7.0)
    fresh_opt = make_optimizer(fresh.parameters())
    fresh.load(tmp_path / "model.npz")
    fresh_opt.load_state_dict(tg.load_arrays(tmp_path / "opt.npz"))
    assert _losses(fresh.p, fresh_opt, 5) == uninterrupted


def test_optimizer_state_dict_is_a_copy():
    p = _one_grad(G1)
    opt = tg.optim.Adam([p], lr=0.1)
    opt.step()
    state = opt.state_dict()
    state["0.m"][...] = 0.0
    assert not np.all(opt.state_dict()["0.m"] == 0.0)


@pytest.mark.parametrize("bad", [
    {"steps": np.array(1), "0.m": np.zeros(3), "0.v": np.zeros(4)},
    {"steps": np.array(1), "5.m": np.zeros(4)},
    {"0.m": np.zeros(4), "0.v": np.zeros(4)},
    {"steps": np.array(1), "0.velocity": np.zeros(4)},
], ids=["wrong_shape", "unknown_parameter", "missing_steps", "another_optimizers_state"])
def test_optimizer_load_state_dict_refuses_a_mismatch_and_changes_nothing(bad):
    p = _one_grad(G1)
    opt = tg.optim.Adam([p], lr=0.1)
    opt.step()
    before = opt.state_dict()
    with pytest.raises(tg.CheckpointError):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert set(after) == set(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
