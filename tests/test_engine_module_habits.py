"""Module habits of PyTorch users (SPEC round 3): train()/eval()/training with dropout following
the mode, to(dtype)/float()/double() in place, named_modules()/children(), and
load_state_dict(cast=True).
"""

import sys

import numpy as np
import pytest
from test_engine_module import Cell, Net

import rnn
import tinygraph as tg


class WithDropout(tg.Module):
    """A user's module whose forward uses both ways of following the mode."""

    def __init__(self):
        self.W = tg.Parameter(np.ones((4, 4)))
        self.drop = tg.Dropout(0.5, seed=0)
        self.inner = Cell(1)

    def __call__(self, x):
        h = tg.dropout(x @ self.W, 0.5, seed=1, train=self.training)
        return self.drop(h)

# ---------------------------------------------------------------- modes


def test_a_module_starts_in_training_mode_and_eval_switches_every_submodule():
    net = WithDropout()
    assert net.training and net.drop.training and net.inner.training
    assert net.eval() is net
    assert not net.training and not net.drop.training and not net.inner.training
    assert net.train() is net and all(m.training for _, m in net.named_modules())
    net.train(False)
    assert not any(m.training for _, m in net.named_modules())


def test_dropout_follows_the_modules_mode():
    net = WithDropout()
    x = np.ones((50, 4))
    train_out = net(x).data
    assert (train_out == 0).mean() > 0.5                    # two dropouts of p = 0.5: ~75% zero
    net.eval()
    np.testing.assert_array_equal(net(x).data, x @ net.W.data)   # the identity in eval mode


def test_the_dropout_module_draws_a_new_reproducible_mask_on_each_call():
    a, b = tg.Dropout(0.5, seed=3), tg.Dropout(0.5, seed=3)
    x = np.ones(40)
    first, second = a(x).data, a(x).data
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(b(x).data, first)
    with pytest.raises(tg.ConfigError, match="Dropout"):
        tg.Dropout(1.5)


def test_training_must_be_a_bool():
    with pytest.raises(tg.ConfigError, match="True or False"):
        Net().train("no")

# ---------------------------------------------------------------- the module tree


def test_named_modules_lists_the_module_and_every_submodule_once_in_definition_order():
    net = Net()
    net.again = net.cell                                     # the same module twice: listed once
    names = [name for name, _ in net.named_modules()]
    assert names == ["", "cell", "heads.1"]
    assert [m for _, m in net.named_modules()][1] is net.cell
    assert [name for name, _ in net.named_modules(prefix="net")] == ["net", "net.cell", "net.heads.1"]


def test_children_are_the_direct_submodules():
    outer = tg.Module()
    outer.net = Net()
    assert list(outer.children()) == [outer.net]
    assert [name for name, _ in outer.named_children()] == ["net"]
    assert [name for name, _ in outer.named_modules()] == ["", "net", "net.cell", "net.heads.1"]

# ---------------------------------------------------------------- dtypes


def test_float_and_double_convert_every_parameter_fixed_ones_and_gradients_in_place():
    model = rnn.EchoStateNetwork(3, 5, 2, seed=0)             # U and W fixed, V and c trained
    params = {name: p for name, p in model._named_state()}
    before = {name: p.data.copy() for name, p in params.items()}
    model.V.grad = np.ones(model.V.shape)
    assert model.float() is model
    for name, p in model._named_state():
        assert p is params[name] and p.dtype == np.float32
        np.testing.assert_array_equal(p.data, before[name].astype(np.float32))
    assert model.V.grad.dtype == np.float32 and not model.U.requires_grad
    assert model.double().V.dtype == np.float64
    assert model.to("float32").dtype == np.float32


def test_a_float32_model_computes_in_float32_and_matches_the_float64_one():
    xs, ys = np.array([0, 2, 1, 1]), np.array([1, 0, 2, 0])
    model = rnn.LSTM(3, 4, 3, seed=0)
    exact = model.loss(xs, ys).item()
    loss = model.float().loss(xs, ys)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), exact, rtol=1e-5)


def test_a_graph_built_before_a_dtype_move_refuses_to_backpropagate():
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    loss = model.loss(np.array([0, 1]), np.array([1, 2]))
    model.float()
    with pytest.raises(tg.StaleGraphError):
        loss.backward()


def test_to_the_same_dtype_changes_nothing_and_keeps_graphs_valid():
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    loss = model.loss(np.array([0, 1]), np.array([1, 2]))
    model.double()
    loss.backward()
    assert model.W.grad is not None


@pytest.mark.parametrize("dtype", [np.int64, "not a dtype", bool])
def test_to_refuses_a_non_float_dtype_and_changes_nothing(dtype):
    net = Net()
    with pytest.raises(tg.DTypeError, match="Net.to"):
        net.to(dtype)
    assert all(p.dtype == np.float64 for p in net.parameters())


@pytest.mark.parametrize("where", ["value", "gradient"])
def test_to_refuses_a_value_beyond_the_new_dtypes_range_and_converts_nothing(where):
    # model.to(np.float16) made a bias of 1e6 (or its gradient) inf without a word, where
    # load_state_dict(cast=True) refuses a value it would make infinite
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    model.loss(np.array([0, 1]), np.array([1, 2])).backward()
    (model.b.data if where == "value" else model.b.grad)[2] = 1e6
    before = {name: (p.data.copy(), p.grad.copy()) for name, p in model.named_parameters()}
    label = "'b'" if where == "value" else "the gradient of 'b'"
    with pytest.raises(tg.OutOfRangeError, match=rf"ElmanRNN.to: {label} holds 1000000.0 at "
                                                 r"\(2,\), beyond the range of float16"):
        model.to(np.float16)
    for name, p in model.named_parameters():
        assert p.dtype == np.float64 and p.grad.dtype == np.float64
        np.testing.assert_array_equal(p.data, before[name][0])
        np.testing.assert_array_equal(p.grad, before[name][1])
    (model.b.data if where == "value" else model.b.grad)[2] = 0.5
    assert model.to(np.float16).b.dtype == np.float16


def test_load_state_dict_refuses_another_dtype_by_default_and_cast_converts_it():
    model32 = rnn.GRU(3, 4, 3, seed=1).float()
    state64 = rnn.GRU(3, 4, 3, seed=2).state_dict()
    before = model32.state_dict()
    with pytest.raises(tg.CheckpointError, match="float64.*float32.*cast=True"):
        model32.load_state_dict(state64)
    for name, value in model32.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    model32.load_state_dict(state64, cast=True)
    for name, value in model32.state_dict().items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, state64[name].astype(np.float32))


def test_load_state_dict_with_cast_still_refuses_a_wrong_shape_or_a_non_real_dtype_and_changes_nothing():
    net = Net()
    before = net.state_dict()
    for bad in ({"U": np.ones((2, 3), np.float32)}, {"c": np.ones(1, np.complex128)}):
        state = {**net.state_dict(), **bad}
        state = {k: v.astype(np.float32) if k != next(iter(bad)) else v for k, v in state.items()}
        with pytest.raises(tg.CheckpointError, match=next(iter(bad))):
            net.load_state_dict(state, cast=True)
        for name, value in net.state_dict().items():
            np.testing.assert_array_equal(value, before[name])
            assert value.dtype == np.float64


def test_zero_grad_clears_a_parameter_frozen_after_a_backward_so_no_optimizer_moves_it():
    # was: Module.zero_grad skipped fixed Parameters, so U frozen after a backward kept its
    # stale gradient and an optimizer made before moved it by 0.076 on the next step
    m = rnn.ElmanRNN(4, 5, 4, seed=0)
    xs, ys = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0])
    opt = tg.optim.SGD(m.parameters(), lr=0.1)
    m.zero_grad()
    m.loss(xs, ys).backward()
    opt.step()
    m.U.requires_grad = False
    frozen = m.U.data.copy()
    m.zero_grad()
    assert m.U.grad is None
    m.loss(xs, ys).backward()
    opt.step()
    np.testing.assert_array_equal(m.U.data, frozen)


def test_zero_grad_set_to_none_false_leaves_zeros_of_each_gradients_shape_and_dtype():
    # was: a TypeError (unexpected keyword) from Module, Optimizer and Tensor zero_grad
    m = rnn.ElmanRNN(3, 4, 3, seed=0).float()
    opt = tg.optim.SGD(m.parameters(), lr=0.1)
    m.loss(np.array([0, 1, 2]), np.array([1, 2, 0])).backward()
    for clear in (opt.zero_grad, m.zero_grad, m.U.zero_grad):
        clear(set_to_none=False)
        assert m.U.grad.dtype == np.float32 and m.U.grad.shape == m.U.shape
        assert not m.U.grad.any()
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(tg.ConfigError, match="SGD.zero_grad: set_to_none"):
        opt.zero_grad(set_to_none="no")


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_model_and_its_optimizer_copied_together_train_on_as_the_original(how):
    # was: the copied optimizer refused every step ("the parameters of param_groups were
    # changed after the optimizer was made"): it checked its parameters by the originals' ids
    import copy
    import pickle
    xs, ys = np.array([0, 1, 2]), np.array([1, 2, 0])
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    trainer = rnn.Trainer(model, tg.optim.Adam(model.parameters(), 0.1))
    trainer.step(xs, ys)
    pair = (model, trainer.optimizer)
    twin, twin_opt = copy.deepcopy(pair) if how == "deepcopy" else pickle.loads(pickle.dumps(pair))
    copied = rnn.Trainer(twin, twin_opt)
    for _ in range(3):
        assert copied.step(xs, ys) == trainer.step(xs, ys)
    for p, q in zip(twin.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert not np.shares_memory(p.data, q.data)


def test_a_model_pickled_before_requires_grad_became_a_property_unpickles():
    # requires_grad was a slot until stop 35 and is now a property over the slot _rg: a pickle
    # made before names the slot 'requires_grad', and unpickling it set the property, which
    # failed with a bare "AttributeError: 'Parameter' object has no attribute '_rg'".  Here
    # that pickle is made by renaming the slot in a protocol-2 pickle (its strings carry their
    # length, and it has no frames)
    import pickle
    xs, ys = np.array([0, 1, 2]), np.array([1, 2, 0])
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    model.U.requires_grad = False
    new = pickle.dumps(model, protocol=2)
    old = new.replace(b"X\x03\x00\x00\x00_rg", b"X\x0d\x00\x00\x00requires_grad")
    assert b"requires_grad" in old and b"_rg" not in old     # (memoised: written once)
    for data in (old, new):
        twin = pickle.loads(data)
        assert not twin.U.requires_grad and twin.W.requires_grad
        assert [n for n, _ in twin.named_parameters()] == [n for n, _ in model.named_parameters()]
        assert twin.loss(xs, ys).item() == model.loss(xs, ys).item()


def test_a_trainer_with_clipping_trains_on_after_a_parameter_is_frozen():
    # was: clip_grad_norm refused the frozen parameter still in the optimizer's list ("every
    # parameter must be a Tensor that requires grad, got Parameter"), after backward had run
    xs, ys = np.array([0, 1, 2]), np.array([1, 2, 0])
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    trainer = rnn.Trainer(model, lr=0.1, clip=1.0)
    trainer.step(xs, ys)
    model.U.requires_grad = False
    frozen, W = model.U.data.copy(), model.W.data.copy()
    trainer.step(xs, ys)
    np.testing.assert_array_equal(model.U.data, frozen)
    assert not np.array_equal(model.W.data, W)
    with pytest.raises(tg.ConfigError, match="requires grad; parameter 0 'U' does not"):
        tg.optim.SGD([model.U], lr=0.1)


class _Child(tg.Module):
    def __init__(self, parent):
        self.parent = parent          # a back-reference, as a PyTorch user may keep
        self.w = tg.Parameter(np.ones(2))


class _Parent(tg.Module):
    def __init__(self):
        self.v = tg.Parameter(np.ones(3))
        self.child = _Child(self)


def test_a_module_that_refers_back_to_its_parent_lists_each_parameter_once(tmp_path):
    # was: a bare RecursionError from parameters(), state_dict(), save, to() ...
    net = _Parent()
    assert [name for name, _ in net.named_parameters()] == ["v", "child.w"]
    assert list(net.state_dict()) == ["v", "child.w"]
    net.save(tmp_path / "net.ckpt")
    other = _Parent()
    other.v.data = np.zeros(3)
    other.load(tmp_path / "net.ckpt")
    np.testing.assert_array_equal(other.v.data, np.ones(3))
    assert net.float().child.w.dtype == np.float32


def test_requires_grad_freezes_a_parameter_or_a_whole_module_as_pytorchs():
    # was: AttributeError ('Parameter' object has no attribute 'requires_grad_')
    m = rnn.ElmanRNN(3, 4, 3, seed=0)
    assert m.U.requires_grad_(False) is m.U and not m.U.requires_grad
    assert [n for n, _ in m.named_parameters()] == ["W", "V", "b", "c"]
    assert "U" in m.state_dict()
    assert m.requires_grad_(False) is m and m.parameters() == []
    m.requires_grad_()
    assert len(m.parameters()) == 5
    with pytest.raises(tg.ConfigError, match="requires_grad_: only a leaf"):
        (m.U * 2).requires_grad_(False)
    with pytest.raises(tg.DTypeError, match="requires_grad_: only float"):
        tg.tensor([1, 2]).requires_grad_()
    with pytest.raises(tg.ConfigError, match="ElmanRNN.requires_grad_: expected True or False"):
        m.requires_grad_("no")


def _container_of_a_user_cell(order):
    """A module holding a user Recurrence whose parameter list is written in ``order``."""
    rng = np.random.default_rng(0)
    weights = {name: tg.Parameter(rng.normal(size=(3, 3)), name=name) for name in "WUV"}
    W, U, V = weights["W"], weights["U"], weights["V"]
    cell = rnn.Recurrence(lambda h, x: (h @ W.T + x @ U.T).tanh(), [weights[n] for n in order],
                          n_state=3, n_in=3, readout=lambda h: h @ V.T)

    class Tagger(tg.Module):
        def __init__(self):
            super().__init__()
            self.cell = cell
    return Tagger(), weights


def test_a_user_cell_inside_a_module_names_its_parameters_by_their_own_names():
    # they were named cell._params.0, .1, .2 by position: after the list was reordered in the
    # code, a checkpoint loaded W's values into U (same shape), without a word
    saved, weights = _container_of_a_user_cell("WUV")
    assert [n for n, _ in saved.named_parameters()] == ["cell.W", "cell.U", "cell.V"]
    state = saved.state_dict()
    loaded, reordered = _container_of_a_user_cell("UVW")
    for p in reordered.values():
        p.data = np.zeros((3, 3))
    loaded.load_state_dict(state)
    for name in "WUV":
        np.testing.assert_array_equal(reordered[name].data, weights[name].data)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_load_state_dict_with_cast_refuses_a_value_beyond_the_models_range_and_changes_nothing():
    # was: cast=True made a float64 1e39 an inf of the float32 model, with only numpy's own
    # "overflow encountered in cast" warning (no name, no entry) or, where warnings are off,
    # nothing at all
    model32 = rnn.GRU(3, 4, 3, seed=1).float()
    state64 = rnn.GRU(3, 4, 3, seed=2).state_dict()
    state64["W"][1, 2] = 1e39
    before = model32.state_dict()
    with pytest.raises(tg.CheckpointError, match=r"load_state_dict: 'W' holds 1e\+39 at \(1, 2\)"
                                                 r", beyond the range of the model's float32"):
        model32.load_state_dict(state64, cast=True)
    for name, value in model32.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    state64["W"][1, 2] = np.inf                  # an infinite value stays what it was
    model32.load_state_dict(state64, cast=True)
    assert model32.W.data[1, 2] == np.inf


def test_dropout_modules_of_neighbouring_seeds_draw_independent_masks():
    # was: the k-th call used seed + k, so Dropout(seed=2)'s masks were Dropout(seed=1)'s
    # shifted by one call: every mask of one equal to the next mask of the other
    a, b = tg.Dropout(0.5, seed=1), tg.Dropout(0.5, seed=2)
    x = np.ones(64)
    first = [a(x).data for _ in range(6)]
    second = [b(x).data for _ in range(6)]
    assert not any(np.array_equal(m, n) for m in first for n in second)
    again = tg.Dropout(0.5, seed=1)            # still reproducible, call after call
    for mask in first:
        np.testing.assert_array_equal(again(x).data, mask)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "7"])
def test_a_dropout_seed_that_is_no_count_is_refused_when_made(seed):
    # was: accepted, and the first call in training mode raised numpy's own error
    with pytest.raises(tg.ConfigError, match=r"Dropout: seed must be an integer >= 0 or None"):
        tg.Dropout(0.5, seed=seed)


def test_a_dropout_call_that_fails_draws_no_mask(monkeypatch):
    # was: the call was counted before the mask was drawn, so after a failure (here out of
    # memory) the next call skipped a mask and the run went on from other masks
    drop, twin = tg.Dropout(0.5, seed=4), tg.Dropout(0.5, seed=4)
    x = np.ones(32)
    module = sys.modules["tinygraph.module"]
    dropout = module.dropout

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(module, "dropout", out_of_memory)
    with pytest.raises(MemoryError):
        drop(x)
    monkeypatch.setattr(module, "dropout", dropout)
    assert drop._calls == 0
    np.testing.assert_array_equal(drop(x).data, twin(x).data)


@pytest.mark.parametrize("saved, model", [(np.float32, np.float64), (np.float64, np.float32)])
def test_a_checkpoint_of_another_precision_is_refused_by_load_with_the_way_to_convert_it(
        tmp_path, saved, model):
    # a float32 file into a float64 model (or the reverse) is never cast by load (torch's
    # load_state_dict would copy it with a cast): the error names both dtypes and says how to
    # convert on purpose; nothing changes
    rnn.GRU(3, 4, 3, seed=2).to(saved).save(tmp_path / "m.npz")
    target = rnn.GRU(3, 4, 3, seed=1).to(model)
    before = target.state_dict()
    with pytest.raises(tg.CheckpointError, match=rf"dtype {np.dtype(saved)}, expected "
                                                 rf"{np.dtype(model)} \(saved in another precision.*"
                                                 r"cast=True"):
        target.load(tmp_path / "m.npz")
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
        assert value.dtype == model
    target.load_state_dict(tg.load_arrays(tmp_path / "m.npz"), cast=True)
    assert all(v.dtype == model for v in target.state_dict().values())
