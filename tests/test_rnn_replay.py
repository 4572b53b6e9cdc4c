"""The replayed executor (rnn.replay, tinygraph.tape): ``loss`` runs a cell's first steps as
engine ops, records two, and replays the rest from the recording; every design, and a user's
cell, gives the same loss and gradients as with replay off and as ``run`` (every op a node),
with masks, lags, feedback, float32 and truncated BPTT.  Steps that cannot be replayed fall
back to the engine, and the unroll says why."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rnn
import tinygraph as tg
from rnn import replay
from tinygraph import ops, tape

from viz_layout import designs

T = 11


def _args(name, model, rng, batch):
    lead = (T,) if batch is None else (T, batch)
    ids = rng.integers(0, 4, size=lead)
    ys = rng.integers(0, 4, size=lead)
    if name == "seq2one":
        return (ids, ys[-1]), {}
    if name == "vec2seq":
        return (rng.normal(size=(4,) if batch is None else (batch, 4)), ys), {}
    if name in ("user_lstm", "peephole"):
        return (rng.normal(size=lead + (2,)), ys), {}
    if name == "esn":
        return (ids, rng.normal(size=lead + (4,))), {}
    return (ids, ys), {}


def _graph_ops(root):
    seen, stack, ops = set(), [root], []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        ops.append(node.op)
        stack.extend(node.parents)
    return ops


def _loss_and_grads(model, args, kwargs, how):
    model.zero_grad()
    if how == "run":
        loss = model.run(*args, **kwargs).loss
    else:
        model.replayable = how == "replay"
        try:
            loss = model.loss(*args, **kwargs)
        finally:
            model.replayable = True
    ops = _graph_ops(loss)
    loss.backward()
    return loss.item(), {n: p.grad.copy() for n, p in model.named_parameters()}, ops


def _close(a, b, tol=1e-12):
    assert abs(a[0] - b[0]) <= tol * max(1.0, abs(b[0]))
    for name in b[1]:
        np.testing.assert_allclose(a[1][name], b[1][name], rtol=tol, atol=tol, err_msg=name)


NOT_REPLAYED = {"seq2one", "encdec", "vec2seq", "conditional", "jordan", "esn"}


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("name", sorted(designs()))
def test_every_design_replays_to_the_same_loss_and_gradients(name, batch):
    model = designs()[name]
    rng = np.random.default_rng(1)
    for p in model.parameters():
        p.data = rng.normal(scale=0.6, size=p.shape)
    args, kwargs = _args(name, model, rng, batch)
    replayed = _loss_and_grads(model, args, kwargs, "replay")
    engine = _loss_and_grads(model, args, kwargs, "engine")
    per_step = _loss_and_grads(model, args, kwargs, "run")
    _close(replayed, engine)
    _close(replayed, per_step)
    assert "replay" not in engine[2] and "replay" not in per_step[2]
    print(name, "replay" in replayed[2])


def _fresh(name, seed=1):
    model = designs()[name]
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = rng.normal(scale=0.6, size=p.shape)
    return model, rng


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "leaky_skip", "deep_stacked",
                                  "user_lstm", "bidirectional", "memory", "conditional"])
def test_masked_steps_replay_to_the_same_loss_and_gradients(name):
    model, rng = _fresh(name)
    args, kwargs = _args(name, model, rng, 4)
    mask = np.ones((T, 4))
    mask[T - 3:, 0] = 0          # a shorter sequence, ending among the replayed steps
    if name == "conditional":    # it feeds back y(t-1): its masks are right padding only
        mask[T - 5:, 2] = 0
    else:
        mask[7, 2] = 0           # a skipped step inside a sequence: the state is carried
        mask[8, 3] = 0
    kwargs["mask"] = mask
    replayed = _loss_and_grads(model, args, kwargs, "replay")
    assert "replay" in replayed[2]
    _close(replayed, _loss_and_grads(model, args, kwargs, "engine"))
    _close(replayed, _loss_and_grads(model, args, kwargs, "run"))


@pytest.mark.parametrize("name", ["elman", "lstm", "user_lstm"])
def test_float32_replays_as_the_engine_computes(name):
    model, rng = _fresh(name)
    for p in model.parameters():
        p.data = p.data.astype(np.float32)
    args, kwargs = _args(name, model, rng, 2)
    replayed = _loss_and_grads(model, args, kwargs, "replay")
    engine = _loss_and_grads(model, args, kwargs, "engine")
    assert all(g.dtype == np.float32 for g in replayed[1].values())
    _close(replayed, engine, tol=1e-5)


def test_gradients_reach_the_inputs_and_the_initial_state_through_replayed_steps():
    model, rng = _fresh("elman")
    xs = tg.Tensor(rng.normal(size=(T, 2, 4)), requires_grad=True)
    h0 = tg.Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    ys = rng.integers(0, 4, size=(T, 2))
    got = {}
    for replayable in (True, False):
        model.replayable = replayable
        run = model.run_for_loss(xs, ys, h0=h0)
        assert (run.replayed is not None) == replayable
        got[replayable] = tg.grad(run.loss, [xs, h0] + model.parameters())
    model.replayable = True
    for a, b in zip(got[True], got[False]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_truncated_bptt_with_replay_trains_as_without():
    params = {}
    for replayable in (True, False):
        model, rng = _fresh("lstm", seed=3)
        model.replayable = replayable
        xs = rng.integers(0, 4, size=(40, 2))
        ys = rng.integers(0, 4, size=(40, 2))
        trainer = rnn.Trainer(model, lr=0.1)
        losses, _ = rnn.truncated_bptt(trainer, xs, ys, chunk=10)
        params[replayable] = ([p.data.copy() for p in model.parameters()], losses)
    for a, b in zip(params[True][0], params[False][0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(params[True][1], params[False][1], rtol=1e-12)


@pytest.mark.parametrize("name", ["elman", "lstm", "leaky_skip"])
def test_hessian_vector_products_through_replayed_steps(name):
    model, rng = _fresh(name)
    args, kwargs = _args(name, model, rng, 2)
    params = model.parameters()
    vs = [rng.normal(size=p.shape) for p in params]
    out = {}
    for replayable in (True, False):
        model.replayable = replayable
        loss = model.loss(*args, **kwargs)
        assert ("replay" in _graph_ops(loss)) == replayable
        grads = tg.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vs))
        out[replayable] = [g.data.copy() for g in grads], tg.grad(dot, params)
    model.replayable = True
    for a, b in zip(out[True][0] + out[True][1], out[False][0] + out[False][1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_a_replayed_graph_back_propagates_twice_with_retain_graph():
    model, rng = _fresh("gru")
    args, kwargs = _args("gru", model, rng, 2)
    loss = model.loss(*args, **kwargs)
    loss.backward(retain_graph=True)
    first = [p.grad.copy() for p in model.parameters()]
    loss.backward()
    for a, p in zip(first, model.parameters()):
        np.testing.assert_allclose(p.grad, 2 * a, rtol=1e-12, atol=1e-14)
    with pytest.raises(tg.GraphFreedError):
        loss.backward()


# ---------------------------------------------------------------- when a step is not replayed
def _cell(step, n_state=3):
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.5, size=(n_state, n_state)), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(n_state, 2)), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, n_state)), name="V")
    cell = rnn.Recurrence(lambda h, x: step(h, x, W, U), [W, U, V], n_state, n_in=2,
                          readout=lambda h: h @ V.T, name="cell")
    return cell, [W, U, V]


def _data(rng, batch=2):
    return rng.normal(size=(T, batch, 2)), rng.integers(0, 4, size=(T, batch))


def _three_ways(cell, xs, ys):
    """The cell's loss replayed (``loss``), with its steps run as engine ops (replay off) and
    per step (``run``), one after the other."""
    for how in ("loss", "engine", "run"):
        cell.replayable = how != "engine"
        try:
            loss = cell.run(xs, ys).loss if how == "run" else cell.loss(xs, ys)
        finally:
            cell.replayable = True
        yield loss


def _both(cell, xs, ys):
    """(the unroll for the loss, its loss and gradients) with the cell as it is, and the loss
    and gradients with replay off."""
    got = []
    for replayable in (True, False):
        cell.replayable = replayable
        cell.zero_grad()
        run = cell.run_for_loss(xs, ys)
        run.loss.backward()
        got.append((run, run.loss.item(), [p.grad.copy() for p in cell.parameters()]))
    cell.replayable = True
    return got


def _equal_results(got):
    (_, la, ga), (_, lb, gb) = got
    assert abs(la - lb) <= 1e-12 * abs(lb)
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_user_cell_replays_and_says_so():
    cell, _ = _cell(lambda h, x, W, U: (h @ W.T + x @ U.T).tanh())
    got = _both(cell, *_data(np.random.default_rng(0)))
    assert got[0][0].replayed == (2, T) and got[0][0].not_replayed is None
    assert got[1][0].replayed is None and got[1][0].not_replayed is None   # not tried
    _equal_results(got)


def test_a_step_that_reads_python_state_falls_back_and_stays_exact():
    calls = []

    def step(h, x, W, U):      # a step counter: every step scales by a different constant
        calls.append(1)
        return (h @ W.T + x @ U.T).tanh() * (1.0 + 0.01 * len(calls))
    cell, _ = _cell(step)
    xs, ys = _data(np.random.default_rng(0))
    got = _both(cell, xs, ys)
    assert got[0][0].replayed is None
    assert "different programs" in got[0][0].not_replayed
    calls.clear()
    cell.zero_grad()
    reference = cell.run(xs, ys).loss.item()
    calls.clear()
    assert abs(cell.loss(xs, ys).item() - reference) <= 1e-12 * abs(reference)


def test_a_step_that_reads_a_value_falls_back():
    def step(h, x, W, U):      # branches on the data: the tape cannot know the other branch
        z = h @ W.T + x @ U.T
        return z.tanh() if z.sum().item() > 0 else z.sigmoid()
    cell, _ = _cell(step)
    got = _both(cell, *_data(np.random.default_rng(0)))
    assert got[0][0].replayed is None
    assert "reads a tensor's value" in got[0][0].not_replayed
    _equal_results(got)


def test_a_step_that_branches_on_the_text_of_a_value_falls_back():
    # str(t) and repr(t) read the values without telling the tape: the steps after the two
    # recorded ones (x positive) were replayed on their branch (tanh) though their x is negative
    def step(h, x, W, U):
        z = h @ W.T + x @ U.T
        return z.tanh() if "-" not in str(x) else z.sigmoid()
    cell, _ = _cell(step)
    xs, ys = _data(np.random.default_rng(0))
    xs = np.abs(xs)
    xs[6:] *= -1
    got = _both(cell, xs, ys)
    assert got[0][0].replayed is None
    assert "makes text of a tensor's values" in got[0][0].not_replayed
    _equal_results(got)


def test_a_step_that_branches_through_a_comparison_is_not_replayed_on_the_recorded_branch():
    """A leaky ReLU written with where(z > 0, ...): with two units and one sequence, steps 2 and 3
    can have the same signs and a later step others. The comparison's value is a constant of
    the step; replaying the recorded one gave a loss off by 0.9 before the tape saw it."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(size=(2, 2)), name="W")
    U = tg.Parameter(rng.normal(size=(2, 3)), name="U")
    V = tg.Parameter(rng.normal(size=(3, 2)), name="V")

    def step(h, u):
        z = tg.addmm(u, h, W.T)
        return tg.where(z > 0, z, 0.1 * z)
    cell = rnn.Recurrence(step, [W, U, V], 2, n_in=3, readout=lambda h: h @ V.T,
                          input_map=lambda x: tg.take(U.T, x, axis=0))
    xs = np.array([0, 1, 1, 1, 2, 0, 2, 1, 0, 2, 2, 1])
    got = _both(cell, xs, np.roll(xs, -1))
    assert got[0][0].replayed is None
    assert "compares tensors" in got[0][0].not_replayed
    _equal_results(got)
    assert abs(got[0][1] - cell.run(xs, np.roll(xs, -1)).loss.item()) <= 1e-12 * got[0][1]


def _rows(z):      # a Tensor index of the step's own making: the largest entry of each row
    return z[np.arange(z.shape[0]), tg.argmax(z, axis=-1)]


# what each step does with a value the recording cannot follow (its own values as a constant,
# or fresh random numbers) -> the words of the reason the unroll gives
_VALUE_STEPS = {
    "detach": (lambda z: z.tanh() * z.detach(), "detaches"),
    ".data": (lambda z: z.tanh() * tg.tensor(z.data > 0), ".data"),
    "argmax index": (lambda z: z.tanh() + _rows(z)[:, None], "argmax"),
    "sort": (lambda z: tg.sort(z, axis=-1)[0].tanh(), "sort"),
    "one_hot of a Tensor": (lambda z: z.tanh() + tg.one_hot(tg.argmax(z, axis=-1), 3),
                            "argmax"),
    "where": (lambda z: tg.where(z > 0.1, z, -z).tanh(), "compares"),
    "dropout, no seed": (lambda z: tg.dropout(z.tanh(), 0.5), "random numbers (dropout"),
    "randn, no seed": (lambda z: z.tanh() + 0.1 * tg.randn(*z.shape), "random numbers (randn"),
    "numpy signbit": (lambda z: z.tanh() * np.signbit(z), "numpy function"),   # (np.sign is
    #                                                     a node with gradient 0, as tg.sign)
    "np.asarray": (lambda z: z.tanh() * tg.tensor(np.asarray(z) > 0), "np.asarray"),
    "in place": (lambda z: z.tanh() * _COUNTS.__iadd__(1.0), "in place (+=)"),
}
_COUNTS = tg.zeros(1)      # a running count the step adds to: a constant that changes


@pytest.mark.parametrize("kind", sorted(_VALUE_STEPS))
def test_a_step_that_takes_a_value_as_a_constant_falls_back_and_says_how(kind):
    fn, words = _VALUE_STEPS[kind]
    cell, _ = _cell(lambda h, x, W, U: fn(h @ W.T + x @ U.T))
    xs, ys = _data(np.random.default_rng(0))
    if "random" in words or "in place" in words:   # new random numbers, or a count changed in
        #                                            place: no two runs are alike
        run = cell.run_for_loss(xs, ys)
        assert run.replayed is None and words in run.not_replayed
        return
    got = _both(cell, xs, ys)
    assert got[0][0].replayed is None and words in got[0][0].not_replayed
    _equal_results(got)


def test_reading_shapes_and_seeded_randomness_still_replay():
    """What is the same for every step replays: a shape read, np.shape / np.ndim of a Tensor,
    and dropout with a seed (the same mask each step, drawn again for each step off the tape)."""
    def step(h, x, W, U):
        z = h @ W.T + x @ U.T
        assert np.ndim(z) == 2 and np.shape(z) == z.shape == z.data.shape[:0] + z.shape
        return tg.dropout(z.tanh(), 0.25, seed=7) * float(z.shape[-1])
    cell, _ = _cell(step)
    got = _both(cell, *_data(np.random.default_rng(1)))
    assert got[0][0].replayed is None and ".data" in got[0][0].not_replayed   # z.data: read

    def plain(h, x, W, U):
        z = h @ W.T + x @ U.T
        assert np.ndim(z) == 2 and np.shape(z) == z.shape
        return tg.dropout(z.tanh(), 0.25, seed=7) * float(z.shape[-1])
    cell, _ = _cell(plain)
    got = _both(cell, *_data(np.random.default_rng(1)))
    assert got[0][0].replayed == (2, T) and got[0][0].not_replayed is None
    _equal_results(got)


def test_a_step_that_makes_nodes_without_apply_falls_back():
    def step(h, x, W, U):
        z = h @ W.T + x @ U.T
        two = tg.make_node("two", np.full(z.shape, 2.0), (z,), [lambda g: g * 0])   # constant
        return (z * two).tanh()
    cell, _ = _cell(step)
    got = _both(cell, *_data(np.random.default_rng(0)))
    assert "without tinygraph.apply" in got[0][0].not_replayed
    _equal_results(got)


def _replay_engine_run(cell, xs, ys, reset=lambda: None, **kwargs):
    """(the unroll with replay on, then [loss, gradients] with replay on, off, and of ``run``),
    ``reset`` called before each (a buffer the step changes starts over)."""
    got, first = [], None
    for how in ("replay", "engine", "run"):
        reset()
        cell.zero_grad()
        cell.replayable = how == "replay"
        try:
            unrolled = (cell.run if how == "run" else cell.run_for_loss)(xs, ys, **kwargs)
        finally:
            cell.replayable = True
        unrolled.loss.backward()
        first = first or unrolled
        got.append((unrolled.loss.item(), [p.grad.copy() for p in cell.parameters()]))
    for loss, grads in got[1:]:
        assert abs(got[0][0] - loss) <= 1e-12 * abs(loss)
        for a, b in zip(got[0][1], grads):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    return first


def _buffer_steps():
    """Steps that read a numpy buffer they change in place after each step (a running
    offset): in the arguments of an op, and in the closure of a user's op."""
    offset = np.zeros(3)

    def argument(h, x, W, U):
        y = (h @ W.T + x @ U.T + offset).tanh()
        offset[...] += 0.1
        return y

    scale = np.ones(3)

    def closure(h, x, W, U):
        def scaled(a):
            return a * scale, (lambda g: g * scale,)
        y = tg.apply("scaled", scaled, (h @ W.T + x @ U.T).tanh())
        scale[...] += 0.1
        return y
    gain = tg.ones(3) * 1.0       # a tensor that needs no gradient, made by an op (no leaf)
    buffer = gain.data

    def op_made(h, x, W, U):
        y = (h @ W.T + x @ U.T).tanh() * gain
        buffer[...] += 0.05
        return y
    return {"argument": (argument, lambda: offset.fill(0.0)),
            "closure": (closure, lambda: scale.fill(1.0)),
            "tensor made by an op": (op_made, lambda: buffer.fill(1.0))}


@pytest.mark.parametrize("where", ["argument", "closure", "tensor made by an op"])
def test_a_step_that_changes_a_numpy_buffer_in_place_falls_back(where):
    """The recording keeps the values an op read when it ran: two steps that read a buffer
    the step changes then differ.  Before, both recorded steps held the buffer itself, compared
    equal, and every later step replayed with its last values (of a tensor made by an op, one
    that is no leaf, until this test: loss off by 0.18, by 2.9 in another cell)."""
    step, reset = _buffer_steps()[where]
    cell, _ = _cell(step)
    run = _replay_engine_run(cell, *_data(np.random.default_rng(0)), reset=reset)
    assert run.replayed is None and "different programs" in run.not_replayed


def test_a_step_that_switches_gradients_off_inside_falls_back():
    """An op made under tg.no_grad in the step is a cut in the unroll (no gradient flows
    through it); a replayed step would back-propagate through it.  Before, it was replayed and
    the gradients were wrong."""
    def step(h, x, W, U):
        with tg.no_grad():
            k = (h * h).sum(-1, keepdims=True)
        return (h @ W.T + x @ U.T).tanh() * (1.0 + 0.1 * k)
    cell, _ = _cell(step)
    run = _replay_engine_run(cell, *_data(np.random.default_rng(0)))
    assert run.replayed is None and "tg.no_grad" in run.not_replayed


def test_a_step_that_makes_a_tensor_of_a_tensor_falls_back_and_says_so():
    cell, _ = _cell(lambda h, x, W, U: (h @ W.T + x @ U.T).tanh() * tg.tensor(h @ W.T))
    run = _replay_engine_run(cell, *_data(np.random.default_rng(0)))
    assert run.replayed is None and "tg.tensor(t)" in run.not_replayed


@pytest.mark.parametrize("which", ["inside", "input", "output"])
def test_a_step_that_retains_a_gradient_falls_back_and_every_step_keeps_it(which):
    """``retain_grad`` on a tensor of the step (one it makes, its input state or the state it
    returns): a replayed step makes no tensor to keep a gradient in, and the recorded steps'
    nodes stay out of the graph, so before, those tensors of steps 2 and 3 kept a .grad of
    None (and the steps after made none) where the engine's steps all had theirs."""
    kept = []

    def step(h, x, W, U):
        z = h @ W.T + x @ U.T
        new = z.tanh()
        kept.append({"inside": z, "input": h, "output": new}[which].retain_grad())
        return new
    cell, _ = _cell(step)
    xs, ys = _data(np.random.default_rng(0))
    grads = {}
    for how in ("loss", "run"):
        kept.clear()
        cell.zero_grad()
        run = cell.run_for_loss(xs, ys) if how == "loss" else cell.run(xs, ys)
        run.loss.backward()
        assert len(kept) == T
        grads[how] = [t.grad for t in kept]
        if how == "loss":
            assert run.replayed is None and "retain_grad" in run.not_replayed
    if which == "input":         # the state before step 1 needs no gradient
        assert grads["loss"][0] is None and grads["run"][0] is None
        del grads["loss"][0], grads["run"][0]
    for a, b in zip(grads["loss"], grads["run"]):
        assert a is not None and b is not None
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_an_op_that_fails_at_a_replayed_step_names_itself_and_the_step():
    """A user's op whose forward refuses some values, first at step 7: the engine's steps
    raise the engine's error (naming the op, its input shapes and the scope t=7); the
    replayed steps called the forward from the recorded program, and its bare ValueError
    came out of the replay's loop, without op, shapes or step."""
    def checked_log(x):
        if (x <= 0).any():
            raise ValueError("checked_log needs positive inputs")
        return np.log(x), (lambda g: g / x,)

    cell, _ = _cell(lambda h, x, W, U: tg.apply(
        "checked_log", checked_log, (h @ W.T + x @ U.T).tanh() + x[..., :1]) * 0.5)
    xs, ys = _data(np.random.default_rng(0))
    xs[:, :, 0] = 1.5          # tanh(.) + 1.5 > 0 ...
    xs[6, 1, 0] = -5.0         # ... but at t=7
    errors = []
    for how in ("loss", "engine", "run"):
        cell.replayable = how != "engine"
        try:
            with pytest.raises(tg.TinygraphError) as caught:
                cell.run(xs, ys) if how == "run" else cell.loss(xs, ys)
        finally:
            cell.replayable = True
        errors.append((type(caught.value), str(caught.value)))
    assert "checked_log" in errors[0][1] and "(2, 3)" in errors[0][1] and "t=7" in errors[0][1]
    assert errors[0] == errors[1] == errors[2]
    # the same cell on good data still replays, and gives the engine's loss
    xs[6, 1, 0] = 1.5
    got = _both(cell, xs, ys)
    assert got[0][0].replayed == (2, T)
    _equal_results(got)


def test_a_users_op_whose_output_shape_follows_its_values_falls_back_at_the_step_it_changes():
    """A user's op that makes (B, 1) from some values and (B, 3) from others, first at step 7
    (numpy broadcasts either on): the replay ran step 7 on from the recorded step's program,
    whose lean gradient forms hold for the recorded shapes, and gave another gradient than
    the engine's (off by 7e-3, the loss the same); a (B, 1) state was written into the (B, 3)
    rows, and came out as numpy's error in backward.  Now the op's output is checked against the recorded
    one (only a user's op: the engine's follow from their inputs' shapes) and the unroll
    runs every step as engine ops, saying why."""
    def peak(x):
        top = x == x.max(axis=1, keepdims=True)
        if (x > 1.2).any():       # the row maxima only
            return x.max(axis=1, keepdims=True), (lambda g: g * top,)
        return x.copy(), (lambda g: g,)

    for state_shape_changes in (False, True):
        def step(h, x, W, U):
            y = tg.apply("peak", peak, (h @ W.T + x @ U.T).tanh() * 0.1 + x[..., :1])
            return y.tanh() if state_shape_changes else (y * tg.Tensor(np.ones(3))).tanh()
        cell, _ = _cell(step)
        xs, ys = _data(np.random.default_rng(0))
        xs[:, :, 0] = 0.5
        xs[6, 1, 0] = 1.8          # from t=7 on
        if state_shape_changes:    # the engine refuses the state of step 7, as run does
            for how in ("loss", "run"):
                with pytest.raises(tg.ShapeError, match="at t=7 the step function returned"):
                    cell.run(xs, ys) if how == "run" else cell.loss(xs, ys)
            continue
        got = _both(cell, xs, ys)
        assert got[0][0].replayed is None
        assert "peak" in got[0][0].not_replayed and "t=7" in got[0][0].not_replayed
        _equal_results(got)
        cell.zero_grad()
        run = cell.run(xs, ys)
        run.loss.backward()
        assert abs(run.loss.item() - got[0][1]) <= 1e-12 * abs(got[0][1])
        for p, g in zip(cell.parameters(), got[0][2]):
            np.testing.assert_allclose(p.grad, g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("none_at", ["every step", "t=7 on", "t=1..6 and 8.."])
def test_a_users_op_without_a_gradient_for_an_input_at_some_steps_replays_exactly(none_at):
    """A user's op may give an input no gradient (None for its vjp, or a vjp that returns
    None), at every step or only at some (its rule follows the values): the replayed code was
    made for the recorded steps' vjps, so a vjp returning None was made an array of NaN (U's
    gradient all NaN), a None vjp at a later step was called (a bare TypeError), and a
    closure at a later step where the recorded ones were None was not called (its gradient
    lost)."""
    def gate(a, b):
        if none_at == "every step":
            return a * b, (lambda g: g * b, lambda g: None)
        if (b > 0.9).any():
            return a * b, (lambda g: g * b, None)
        return a * b, (lambda g: g * b, lambda g: g * a)

    tape._known.clear()     # no code made for another test's step
    cell, _ = _cell(lambda h, x, W, U: tg.apply(
        "gate", gate, (h @ W.T + x @ U.T + 0.5).tanh(), (x @ U.T).tanh() + x[..., 1:]))
    xs, ys = _data(np.random.default_rng(0))
    xs[:, :, 1] = 5.0 if none_at == "t=1..6 and 8.." else 0.3
    xs[6, :, 1] = 0.3 if none_at == "t=1..6 and 8.." else 5.0
    run = _replay_engine_run(cell, xs, ys)
    assert run.replayed == (2, T)


def test_a_constant_the_steps_read_changed_in_place_before_backward_is_refused_as_by_the_engine():
    """A frozen weight (no gradient) is a constant of the recorded program, kept by value.
    Changed in place after the loss (an update under no_grad: a version bump), backward
    through the engine's steps refuses (their products saved it), but the replay node did not
    read it as a parent: backward ran on and gave the gradients of the old values where the
    engine and run refuse.  Its steps' constants are now parents of the node too."""
    cell, (W, U, V) = _cell(lambda h, x, W, U: (h @ W.T + x @ U.T).tanh())
    W.requires_grad_(False)      # the first step's h @ W.T (h = 0) needs no gradient either
    xs, ys = _data(np.random.default_rng(0))
    for loss in _three_ways(cell, xs, ys):
        with tg.no_grad():
            W *= 2.0
        with pytest.raises(tg.StaleGraphError, match="changed in place"):
            loss.backward()
    run = cell.run_for_loss(xs, ys)     # the frozen weight read as it is now: replayed again
    assert run.replayed == (2, T)
    run.loss.backward()


@pytest.mark.parametrize("bad", ["smaller", "complex"])
def test_a_users_vjp_that_gives_a_bad_gradient_at_a_replayed_step_is_refused_as_by_the_engine(bad):
    """A user's vjp whose gradient is of a shape smaller than its input's (``g.sum()``), or
    complex, only from step 7 on (it follows the values): the engine refuses it, naming the op,
    the shapes and the step; the replayed backward broadcast the smaller one up to the input's
    shape (every entry the same wrong number) or dropped the imaginary part, without a word."""
    def odd(x):
        def vjp(g):
            if (x > 1.2).any():
                return g.sum() if bad == "smaller" else g * (1 + 0j)
            return g
        return x.copy(), (vjp,)

    cell, _ = _cell(lambda h, x, W, U: tg.apply(
        "odd", odd, (h @ W.T + x @ U.T).tanh() * 0.1 + x[..., :1]))
    xs, ys = _data(np.random.default_rng(0))
    xs[:, :, 0] = 0.5
    xs[6, 1, 0] = 1.8            # from t=7 on
    error = tg.ShapeError if bad == "smaller" else tg.DTypeError
    for loss in _three_ways(cell, xs, ys):
        with pytest.raises(error, match="the gradient rule of 'odd'.*t=7"):
            loss.backward()


def test_state_parts_of_different_dtypes_fall_back():
    """A replay keeps every part in one array of one dtype: a float32 part beside a float64
    one would be computed in float64.  Before, the loss differed by 2e-8 from the engine's."""
    rng = np.random.default_rng(0)
    A = tg.Parameter(rng.normal(scale=0.5, size=(1, 1)).astype(np.float32), name="A")
    W = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(3, 2)), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")

    def step(s, x):
        n = (s["n"] @ A.T).tanh()                 # float32, from a float32 weight
        return {"h": (s["h"] @ W.T + x @ U.T).tanh() * (1 + n), "n": n}
    cell = rnn.Recurrence(step, [A, W, U, V], {"h": 3, "n": 1}, n_in=2,
                          readout=lambda s: s["h"] @ V.T, name="cell")
    h0 = {"h": np.zeros((2, 3)), "n": np.full((2, 1), 0.5, np.float32)}
    run = _replay_engine_run(cell, *_data(rng), h0=h0)
    assert run.replayed is None and "different dtypes (h: float64, n: float32)" in run.not_replayed
    assert run.parts["n"][-1].dtype == np.float32


def test_an_input_map_that_loses_the_time_axis_is_refused_by_name():
    """The input map runs over all steps at once: a map that does not act on each step's input
    alone cannot be read one row per step.  Before, this one (its output (2, 3) for 11 steps of
    batch 2) read row t of the batch and failed at t=3 with an index error."""
    fixed = tg.tensor(np.ones((2, 3)))
    cell, _ = _cell(lambda h, u, W, U: (h @ W.T + u).tanh())
    cell.input_map_fn = lambda x: fixed * 1.0
    with pytest.raises(tg.ShapeError, match=r"cell: the input map of 11 step\(s\) at once gave "
                                            r"shape \(2, 3\), not \(11, 2, \.\.\.\)"):
        cell.loss(*_data(np.random.default_rng(0)))


def test_run_and_short_unrolls_are_not_replayed():
    cell, _ = _cell(lambda h, x, W, U: (h @ W.T + x @ U.T).tanh())
    xs, ys = _data(np.random.default_rng(0))
    assert cell.run(xs, ys).replayed is None
    short = cell.run_for_loss(xs[:5], ys[:5])
    assert short.replayed is None and short.not_replayed is None
    assert "replay" not in _graph_ops(short.loss)


def test_replayed_states_are_the_per_step_states():
    model, rng = _fresh("lstm")
    args, kwargs = _args("lstm", model, rng, 2)
    fast = model.run_for_loss(*args, **kwargs)
    slow = model.run(*args, **kwargs)
    assert fast.replayed is not None
    assert len(fast.states) == len(slow.states) == T
    for a, b in zip(fast.states, slow.states):
        for part in ("s", "h"):
            np.testing.assert_allclose(a[part].data, b[part].data, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fast.last["h"].data, slow.last["h"].data, rtol=1e-13)


# ---------------------------------------------------------------- the tape itself
def _f(x, w, c):
    return ((x @ w).tanh() * c + x[:, :2].sum(axis=1, keepdims=True)).sigmoid()


def test_a_program_computes_what_the_engine_computes():
    rng = np.random.default_rng(0)
    w = tg.Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    xs = [tg.Tensor(rng.normal(size=(4, 3)), requires_grad=True) for _ in range(2)]
    with tape.recording() as rec:
        y = _f(xs[0], w, 0.5)
    program = tape.Program.of(rec, [xs[0]], [y])
    assert isinstance(program, tape.Program) and program.outside == [w]
    values, rules = program.forward([xs[1].data])
    y1 = _f(xs[1], w, 0.5)
    np.testing.assert_array_equal(program.outputs_of(values)[0], y1.data)
    g = rng.normal(size=y1.shape)
    g_in, g_out = program.backward(values, rules, [g])
    gx, gw = tg.grad(y1, [xs[1], w], grad=g)
    np.testing.assert_allclose(g_in[0], gx, rtol=1e-14)
    np.testing.assert_allclose(g_out[0], gw, rtol=1e-14)


def test_programs_differ_when_their_constants_or_outside_tensors_do():
    rng = np.random.default_rng(0)
    w, w2 = (tg.Tensor(rng.normal(size=(3, 2)), requires_grad=True) for _ in range(2))
    x = tg.Tensor(rng.normal(size=(4, 3)))

    def program(w, c):
        with tape.recording() as rec:
            y = _f(x, w, c)
        return tape.Program.of(rec, [x], [y])
    assert program(w, 0.5).same(program(w, 0.5))
    assert not program(w, 0.5).same(program(w, 0.25))
    assert not program(w, 0.5).same(program(w2, 0.5))


def test_programs_of_inputs_of_other_shapes_do_not_share_code(monkeypatch):
    """The code made for a program is shared with an equal program recorded later, and its
    backward is made for the shapes of the values it was first run on: a step whose input
    broadcasts (u of (3,) or (1, 3) into (1, 3) rows) makes ops of the same shapes from inputs
    of other shapes, which must not count as the same program.  (The known programs start
    empty here: the cache is cleared when it reaches 64, so with 63 left by earlier tests the
    second program's entry would drop the first's.)"""
    monkeypatch.setattr(tape, "_known", {})
    rng = np.random.default_rng(0)
    w = tg.Tensor(rng.normal(size=(3, 3)), requires_grad=True)
    h = tg.Tensor(rng.normal(size=(1, 3)))

    def program(u):
        with tape.recording() as rec:
            y = tg.addmm(u, h, w).tanh()
        return tape.Program.of(rec, [h, u], [y])
    row, rows = program(tg.Tensor(np.ones(3))), program(tg.Tensor(np.ones((1, 3))))
    assert row.shapes == rows.shapes and not row.same(rows)
    assert row._compiled() is not rows._compiled()
    assert row._compiled() is program(tg.Tensor(np.zeros(3)))._compiled()


def test_a_recording_sees_only_its_own_thread():
    import threading
    x = tg.Tensor(np.ones(3), requires_grad=True)
    started, done = threading.Event(), threading.Event()

    def other():
        started.wait()
        for _ in range(50):
            x * 2.0
        done.set()
    thread = threading.Thread(target=other)
    thread.start()
    with tape.recording() as rec:
        started.set()
        done.wait()
        y = x.tanh()
        with tape.recording() as inner:
            assert inner is None          # nested: the outer one records
    thread.join()
    assert [op[0] for op in rec.ops] == ["tanh"] and rec.ops[0][4] is y


def test_a_recording_ends_with_its_block_even_when_the_block_raises():
    """The outer recording goes on recording after a nested one (which records nothing) ends;
    a block that raises ends its recording: ops after it are recorded by no one."""
    x = tg.Tensor(np.ones(3), requires_grad=True)
    with tape.recording() as rec:
        with tape.recording() as inner:
            assert inner is None
        y = x.tanh()
    assert [op[4] for op in rec.ops] == [y]
    with pytest.raises(RuntimeError):
        with tape.recording() as failed:
            x * 2.0
            raise RuntimeError("inside the step")
    x * 3.0
    assert len(failed.ops) == 1
    with tape.recording() as again:
        z = x.exp()
    assert [op[4] for op in again.ops] == [z]


@pytest.mark.parametrize("name", ["elman", "lstm", "gru", "user_lstm"])
def test_steps_with_large_arrays_replay_to_the_same_loss_and_gradients(name):
    model, rng = _fresh(name)
    args, kwargs = _args(name, model, rng, 400)       # h(t) of 1,200 numbers, gates of 3,600
    run = model.run_for_loss(*args, **kwargs)
    assert run.replayed is not None and run.not_replayed is None
    replayed = _loss_and_grads(model, args, kwargs, "replay")
    assert "replay" in replayed[2]
    _close(replayed, _loss_and_grads(model, args, kwargs, "engine"))


def _twice(h, x, W, U):
    Wt = W.T          # one transpose taken in the step, multiplied twice
    return (h @ Wt + (h * h) @ Wt + x @ U.T).tanh()


@pytest.mark.parametrize("step", [
    lambda h, x, W, U: (h @ W + (h * h) @ W + x @ U.T).tanh(),
    lambda h, x, W, U: (h @ W.T + (h * h) @ W.T + x @ U.T).tanh(),
    _twice], ids=["W", "two W.T", "one W.T"])
def test_a_weight_multiplying_many_rows_twice_in_a_step_replays_exactly(step):
    """h W and (h h) W in one step (or with W.T taken in the step), 6 rows each: the two
    products of a step, computed into the scan's scratch (the first of each slot) and anew,
    add up over the steps as in the engine."""
    cell, _ = _cell(step)
    got = _both(cell, *_data(np.random.default_rng(3), batch=6))
    assert got[0][0].replayed == (2, T)
    _equal_results(got)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("how", ["W", "W.T", "masked", "lagged"])
def test_a_wide_steps_weight_gradient_is_summed_in_chunks_of_stacked_rows(monkeypatch, how,
                                                                            dtype):
    """A replayed step of many rows (8 here) leaves h^T g of its weight W (of W.T taken in the
    step: W's own g^T h) to be summed with the other steps' as one product of their stacked
    rows, made whenever the pairs hold tape._CHUNK_BYTES (here 3 steps' rows) and for the rest
    after the last step: never the whole sequence's rows at once, nor a product and a (H, H)
    add per step.  Masked and lagged steps too; the gradients are replay off's to rounding."""
    B, H = 8, 5
    itemsize = np.dtype(dtype).itemsize
    monkeypatch.setattr(tape, "_CHUNK_BYTES", 3 * 2 * B * H * itemsize)
    monkeypatch.setattr(tape, "_known", {})     # no loops made for another chunk size
    sums = []
    sum_deferred = tape.sum_deferred

    def counted(pairs):
        sums.append((len(pairs), pairs[0][0].shape, pairs[0][1].shape))
        return sum_deferred(pairs)
    monkeypatch.setattr(tape, "sum_deferred", counted)
    monkeypatch.setattr(tape, "_ROW_VIEW_BYTES", 1)    # rows of the states' block: a view
    views = []
    adjacent = tape._adjacent
    monkeypatch.setattr(tape, "_adjacent", lambda arrays: views.append(
        adjacent(arrays) is not None) or adjacent(arrays))
    rng = np.random.default_rng(7)
    W = tg.Parameter(rng.normal(scale=0.4, size=(H, H)).astype(dtype), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(H, 2)).astype(dtype), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, H)).astype(dtype), name="V")

    def step(s, x):
        h = s["h"]
        z = (h @ W.T if how == "W.T" else h @ W) + x @ U.T
        if how == "lagged":
            z = z + s[rnn.core.lagged("h", 2)] @ W
        return {"h": z.tanh()}
    cell = rnn.Recurrence(step, [W, U, V], {"h": H}, n_in=2, readout=lambda s: s["h"] @ V.T)
    if how == "lagged":
        cell.lags = {"h": 2}
    xs, ys = rng.normal(size=(T, B, 2)).astype(dtype), rng.integers(0, 4, size=(T, B))
    kwargs = {}
    if how == "masked":
        mask = np.ones((T, B))
        mask[T - 3:, 0] = mask[6, 2] = 0
        kwargs["mask"] = mask
    got = []
    for replayable in (True, False):
        cell.replayable = replayable
        cell.zero_grad()
        run = cell.run_for_loss(xs, ys, **kwargs)
        run.loss.backward()
        got.append((run, run.loss.item(), [p.grad.copy() for p in cell.parameters()]))
        if replayable:
            counts = [n for n, *shapes in sums if shapes == [(B, H), (B, H)]]
    cell.replayable = True
    first = 3 if how == "lagged" else 2
    assert got[0][0].replayed == (first, T)
    steps = T - first + 1           # the replayed steps, each one pair (two when lagged)
    pairs = 2 * steps if how == "lagged" else steps
    assert sum(counts) == pairs and max(counts) <= 3 and counts.count(3) == pairs // 3
    if how != "lagged":       # h(t-1) of the chunks after the first replayed step's
        assert views.count(True) >= len(counts) - 2
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert abs(got[0][1] - got[1][1]) <= tol * abs(got[1][1])
    for a, b in zip(got[0][2], got[1][2]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 1e-2)


def test_deferred_rows_that_are_consecutive_rows_of_a_block_are_stacked_as_a_view(monkeypatch):
    """sum_deferred stacks a's (or g's) that are consecutive rows of one block, in the pairs'
    order or reversed (a replay's backward runs the steps in reverse), as a view of the block,
    the other side in the same order; anything else is copied as before.  The sum is the same
    to rounding whichever way the rows are stacked."""
    monkeypatch.setattr(tape, "_ROW_VIEW_BYTES", 1)
    rng = np.random.default_rng(2)
    states, grads = rng.normal(size=(6, 4, 3)), rng.normal(size=(6, 4, 5))
    fresh = [g.copy() for g in grads]
    expected = sum(states[t].T @ grads[t] for t in range(6))
    views = []
    adjacent = tape._adjacent

    def seen(arrays):
        got = adjacent(arrays)
        views.append(None if got is None else got[1])
        return got
    monkeypatch.setattr(tape, "_adjacent", seen)
    cases = {"both reversed": [(states[t], grads[t]) for t in range(5, -1, -1)],
             "a reversed, g copies": [(states[t], fresh[t]) for t in range(5, -1, -1)],
             "a in order, g reversed": [(states[t], grads[5 - t]) for t in range(6)],
             "copies": [(states[t].copy(), fresh[t]) for t in range(6)]}
    for name, pairs in cases.items():
        expected_here = expected
        if name == "a in order, g reversed":      # a's rows forward, g's backward: pair t
            expected_here = sum(states[t].T @ grads[5 - t] for t in range(6))
        views.clear()
        np.testing.assert_allclose(tape.sum_deferred(pairs), expected_here, rtol=1e-12,
                                   atol=1e-12, err_msg=name)
        assert views == {"both reversed": [True, True], "a reversed, g copies": [True, None],
                         "a in order, g reversed": [False, True],
                         "copies": [None, None]}[name], name
    a, flipped = adjacent([states[t] for t in (3, 2, 1)])
    assert flipped and np.shares_memory(a, states) and np.array_equal(a, states[1:4].reshape(-1, 3))
    assert adjacent([states[0], states[2]]) is None          # not consecutive
    assert adjacent([states[0], fresh[1][:, :3].copy()]) is None


def test_a_state_sliced_into_blocks_some_without_gradient_replays_exactly(monkeypatch):
    """z sliced into blocks that tile it, one block read by nothing: a replayed step copies
    each block's gradient into an uninitialised array (here filled with NaN, as memory may
    hold anything), and zeros the block without one."""
    monkeypatch.setattr(tape, "_empty", lambda like: np.full(like.shape, np.nan, like.dtype))

    def step(h, x, W, U):
        z = h @ W.T + x @ U.T
        first, _unused = z[:, :1], z[:, 1:]
        return tg.concat([first.tanh(), first * 0.5, first.sigmoid()], axis=1)
    cell, _ = _cell(step)
    got = _both(cell, *_data(np.random.default_rng(5), batch=3))
    assert got[0][0].replayed == (2, T)
    _equal_results(got)


class _CountedWrites(np.ndarray):
    """An array counting the writes into it by indexing (``a[k] = value``)."""
    writes = 0

    def __setitem__(self, index, value):
        _CountedWrites.writes += 1
        super().__setitem__(index, value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_tiled_gradient_is_computed_into_its_blocks_not_copied(monkeypatch, dtype):
    """A replayed step's slices that tile an array (a GRU-like step's gates and candidate) get
    their first gradient computed into their block of its gradient (the lean form's ufunc with
    ``out=``: a sigmoid's and a tanh's slope, a product, a negation), so nothing is copied in;
    a block no gradient reaches is still zeroed, one write per step; loss and gradients are
    those of copying each block in, bit for bit (and replay off's to rounding)."""
    monkeypatch.setattr(tape, "_empty", lambda like: np.full(like.shape, np.nan, like.dtype)
                        .view(_CountedWrites))
    H, rng = 3, np.random.default_rng(1)
    W = tg.Parameter(rng.normal(scale=0.5, size=(4 * H, H)).astype(dtype), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(4 * H, 2)).astype(dtype), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, H)).astype(dtype), name="V")

    def step(h, x):
        z = h @ W.T + x @ U.T                           # (B, 4 H)
        _unused = z[:, 3 * H:]                          # a block no gradient reaches
        gates = z[:, :2 * H].sigmoid()
        u, r = gates[:, :H], gates[:, H:]
        return u * h + (1 - u) * (r * z[:, 2 * H:3 * H]).tanh()
    cell = rnn.Recurrence(step, [W, U, V], H, n_in=2, readout=lambda h: h @ V.T, name="cell")
    xs, ys = _data(np.random.default_rng(5), batch=3)
    xs = xs.astype(dtype)
    _CountedWrites.writes = 0
    got = _both(cell, xs, ys)
    assert got[0][0].replayed == (2, T)
    assert _CountedWrites.writes == T - 1      # z's unread block, zeroed at each replayed step
    if dtype == np.float64:
        _equal_results(got)
    else:       # the steps' sums rounded to float32 in another order
        for a, b in zip(got[0][2], got[1][2]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    monkeypatch.setattr(tape, "_into_block", lambda line, block: None)    # copied in, as before
    monkeypatch.setattr(tape, "_known", {})
    copied = _both(cell, xs, ys)
    assert _CountedWrites.writes > 4 * (T - 1)
    assert got[0][1] == copied[0][1]
    for a, b in zip(got[0][2], copied[0][2]):
        assert a.tobytes() == b.tobytes()


def test_into_block_rewrites_only_one_ufunc_of_names():
    """The lean gradients' last lines that :func:`tape._into_block` computes into a block."""
    assert tape._into_block("pg = g * v4", "W9") == "L_multiply(g, v4, out=W9)"
    assert tape._into_block("pg = g / v4", "W9") == "L_divide(g, v4, out=W9)"
    assert tape._into_block("pg = -g", "W9") == "L_negative(g, out=W9)"
    assert (tape._into_block("pg = L_multiply(g, t7_0_0, out=t7_0_0)", "W9")
            == "L_multiply(g, t7_0_0, out=W9)")
    for line in ("pg = g", "pg = -g * v3 / v5", "pg = L_dot(g, v7.T)", "pg = g * None",
                 "pg = g[C10_0_index]", "pg = L_Product(v1.T, g)"):
        assert tape._into_block(line, "W9") is None


def _replay_of(loss):
    """The :class:`rnn.replay.Replay` behind the "replay" node of a loss's graph."""
    stack, seen = [loss], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op == "replay":
            return node._ctx[2]["replay"]
        stack.extend(node.parents)
    raise AssertionError("no replay node")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("design", [rnn.ElmanRNN, rnn.LSTM, rnn.GRU])
def test_a_replayed_step_computes_its_new_state_into_its_row(monkeypatch, design, dtype):
    """The compiled loop computes a new state made by one ufunc (Elman's tanh, the LSTM's sum
    and product, the GRU's sum) into that state's row of the replay's block, not into a fresh
    array copied into the row after; a masked row is still the blend of the two.  The loss and
    gradients are those of the copying loop, bit for bit."""
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(0, 5, (T, 3)), rng.integers(0, 5, (T, 3))
    mask = np.ones((T, 3))
    mask[T - 2:, 1] = 0          # the last two replayed steps are masked in one row
    results = []
    for into in (True, False):
        monkeypatch.setattr(tape, "_known", {})
        monkeypatch.setattr(tape, "_compiled", {})
        if not into:
            monkeypatch.setattr(tape, "_into_rows", lambda *args: {})
        model = design(5, 4, 5, seed=1, dtype=dtype)
        loss = model.loss(xs, ys, mask=mask)
        replay = _replay_of(loss)
        loops = [source for source in tape._compiled if source.startswith("def forward(carry")]
        written = {p for p in range(len(replay.names)) for source in loops
                   if f"out=O{p}[j])" in source}
        assert written == (set(range(len(replay.names))) if into else set())
        if design is rnn.ElmanRNN:    # h(t) = tanh(a(t)), kept for its rule: the row itself
            shared = [np.shares_memory(values[replay.program.outputs[0]], replay.value)
                      for values, _ in replay.saved]
            assert shared[1:-2] == [into] * (len(shared) - 3) and shared[-2:] == [False] * 2
        loss.backward()
        results.append([loss.data] + [p.grad for p in model.parameters()])
    for a, b in zip(*results):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_into_rows_rewrites_only_a_state_made_by_one_ufunc():
    """:func:`tape._into_rows` on a body's lines: a state made by one ufunc line is computed
    into its row; one made by no line of its own, or written by two, is not."""
    env = {"L_tanh": np.tanh, "L_dot": np.dot}
    program = type("P", (), {"outputs": (4,), "first_op": 3})()
    values = [np.zeros((1, 2))] * 5
    like = [((1, 2), np.dtype(np.float64))]
    for body, want in ((["v4 = L_tanh(v3)"], "v4 = L_tanh(v3, out=O0[j])"),
                       (["v4 = v3 * v1"], "v4 = L_multiply(v3, v1, out=O0[j])"),
                       (["v4 = -v3"], "v4 = L_negative(v3, out=O0[j])"),
                       (["v4 = L_dot(v0, v2)"], None),
                       (["v4 = L_dot(v0, v2)", "L_add(v4, v1, out=v4)"], None),
                       (["v4, r1 = F1(v3)"], None),
                       (["v4 = v3[K1]"], None)):
        got = tape._into_rows(program, 1, body, values, like, env)
        assert (got[body[0]][1] if got else None) == want
    assert tape._into_rows(program, 1, ["v4 = L_tanh(v3)"], values,
                           [((2,), np.dtype(np.float64))], env) == {}


def _scanned_step():
    """A step h(t) = tanh(h(t-1) @ W + x(t)) recorded, its scan compiled: (scan, program, W,
    h0, the step's output slots: matmul, add, tanh)."""
    rng = np.random.default_rng(0)
    W = tg.Tensor(rng.normal(scale=0.5, size=(3, 3)), requires_grad=True)
    h, x = tg.Tensor(rng.normal(size=(4, 3))), tg.Tensor(rng.normal(size=(4, 3)))
    with tape.recording() as rec:
        y = (h @ W + x).tanh()
    program = tape.Program.of(rec, [h, x], [y])
    values, rules = program.forward([h.data, x.data])
    first = program.first_op
    return tape.compile_scan(program, 1, values, rules), W, h.data, (first, first + 1, first + 2)


def test_a_scanned_step_keeps_only_what_its_gradient_rules_read():
    (forward, backward), W, h0, (matmul, add, tanh) = _scanned_step()
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(5, 4, 3))
    out = np.empty((5, 4, 3))
    saved = forward([h0], [xs], list(range(5)), [None] * 5, [out], list(range(5)), [W.data])
    for values, _ in saved:       # h and W for the product's rule, tanh's output for its own
        assert values[0] is not None and values[2] is not None and values[tanh] is not None
        assert values[1] is None and values[matmul] is None and values[add] is None
    g_out = rng.normal(size=(5, 4, 3))
    gxs, deferred = [np.zeros((5, 4, 3))], [[]]
    (g_h0,), (g_W,) = backward(saved, [g_out], [None] * 5, list(range(5)), gxs, deferred)
    if deferred[0]:      # h(t-1)^T g: left for one product over the steps
        g_W = tape.sum_deferred(deferred[0]) + (0 if g_W is None else g_W)
    h = tg.Tensor(h0, requires_grad=True)
    x = tg.Tensor(xs, requires_grad=True)
    states = [h]
    for t in range(5):
        states.append((states[-1] @ W + x[t]).tanh())
    loss = sum((s * g).sum() for s, g in zip(states[1:], g_out))
    expected = tg.grad(loss, [h, W, x])
    for got, want in zip((g_h0, g_W, gxs[0]), expected):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out[-1], states[-1].data, rtol=1e-15)


def test_a_scan_refuses_inputs_of_other_shapes_than_it_was_made_for():
    """The lean backward stands in the recorded shape of x(t) for x's gradient: rows (1, 3)
    that broadcast to the same (4, 3) step would have their gradient summed to (4, 3)."""
    (forward, _), W, h0, _ = _scanned_step()
    xs = np.ones((5, 1, 3))
    with pytest.raises(tape.RulesDiffer):
        forward([h0], [xs], list(range(5)), [None] * 5, [np.empty((5, 4, 3))], list(range(5)),
                [W.data])
    with pytest.raises(tape.RulesDiffer):
        forward([h0.astype(np.float32)], [np.ones((5, 4, 3))], list(range(5)), [None] * 5,
                [np.empty((5, 4, 3))], list(range(5)), [W.data])


def test_a_replayed_graph_back_propagates_under_anomaly_detection():
    model, rng = _fresh("lstm")
    args, kwargs = _args("lstm", model, rng, 2)
    expected = _loss_and_grads(model, args, kwargs, "replay")
    model.zero_grad()
    loss = model.loss(*args, **kwargs)
    assert "replay" in _graph_ops(loss)
    with tg.detect_anomaly():
        loss.backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, expected[1][name], rtol=1e-12, atol=1e-14)


def test_a_cell_unrolled_again_reuses_the_code_made_for_its_step_on_its_new_weights():
    from tinygraph import tape as tape_module
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(0, 5, size=(T, 2)), rng.integers(0, 5, size=(T, 2))
    first, second = rnn.ElmanRNN(5, 6, 5, seed=1), rnn.ElmanRNN(5, 6, 5, seed=2)
    first.loss(xs, ys).backward()
    known = dict(tape_module._known)
    for model in (first, second, first):      # same structure, other weights (and transposes)
        model.zero_grad()
        model.loss(xs, ys).backward()
        replayed = [p.grad.copy() for p in model.parameters()]
        model.replayable = False
        model.zero_grad()
        model.loss(xs, ys).backward()
        model.replayable = True
        for a, p in zip(replayed, model.parameters()):
            np.testing.assert_allclose(a, p.grad, rtol=1e-12, atol=1e-14)
    assert tape_module._known.keys() == known.keys()


def test_a_system_without_input_and_a_step_that_makes_no_op_replay():
    """Figure 10.1's system s(t) = f(s(t-1)) (no input) and a step that returns its state
    unchanged made code of an empty unpacking (``= xs``, ``= R``): the replay raised a
    SyntaxError from tinygraph.tape where the engine ran."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.9, size=(3, 3)), name="W")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")
    system = rnn.Recurrence(lambda s: (s @ W.T).tanh() + 0.3, [W, V], 3,
                            readout=lambda s: s @ V.T, state_name="s")
    for batch in (None, 2):
        lead = (T,) if batch is None else (T, batch)
        h0 = rng.normal(size=lead[1:] + (3,))
        run = _replay_engine_run(system, None, rng.integers(0, 4, size=lead), steps=T, h0=h0)
        assert run.replayed == (2, T)
    U = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="U")
    still = rnn.Recurrence(lambda s, x: {"h": s["h"], "c": s["c"]}, [V, U], {"h": 3, "c": 3},
                           n_in=2, readout=lambda s: s["h"] @ V.T + s["c"] @ U.T)
    xs, ys = _data(rng)
    h0 = {"h": rng.normal(size=(2, 3)), "c": rng.normal(size=(2, 3))}
    assert _replay_engine_run(still, xs, ys, h0=h0).replayed == (2, T)


def test_an_input_map_that_gives_numpy_arrays_falls_back():
    """A part of the input map given as a numpy array (a per-step flag) reaches each step as
    numbers, which its ops keep as constants: replayed, every later step read the recorded
    step's flags (loss off by 0.43 when steps 2 and 3 had the same flags and the rest others),
    or indexing the array's memoryview raised NotImplementedError."""
    rng = np.random.default_rng(4)
    W = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(3, 2)), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")

    for lead in ((T,), (T, 2)):
        def flags(x, batched=len(lead) == 2):   # a number per step, or a (B, 1) array
            return (x @ U.T, (x.data[..., :1] if batched else x.data[..., 0]) > 0)
        cell = rnn.Recurrence(lambda h, u: (h @ W.T * u[1] + u[0]).tanh(), [W, U, V], 3,
                              n_in=2, readout=lambda h: h @ V.T, input_map=flags)
        xs = rng.normal(size=lead + (2,))
        xs[1:3, ..., 0], xs[3:, ..., 0] = 1.0, -1.0   # the recorded steps alike, the rest not
        run = _replay_engine_run(cell, xs, rng.integers(0, 4, size=lead))
        assert run.replayed is None and "part 1 is" in run.not_replayed


class _Gain:
    """A user's op as a method: its forward reads the object's own setting."""

    def __init__(self, k):
        self.k = k

    def forward(self, a):
        k = self.k
        return a * k, (lambda g: g * k,)


def test_ops_made_by_methods_of_other_objects_are_other_ops():
    """A bound method's ``__code__`` is its function's: the methods of two objects compared as
    the same forward.  Steps that called another object's method (gains 1.0, 1.0, 0.5, ...)
    recorded 'the same program' and replayed the first one (loss off by 0.14 here, 2.2 in
    another cell), and a cell whose op is the method of another object of the same class ran
    the first one's compiled forward (loss off by 0.08 for k=0.5, 2.4 for k=2)."""
    gains = [_Gain(1.0), _Gain(1.0), _Gain(0.5), _Gain(0.7), _Gain(1.5)]
    count = []

    def step(h, x, W, U):
        count.append(1)
        gain = gains[min(len(count), len(gains)) - 1]
        return tg.apply("gain", gain.forward, (h @ W.T + x @ U.T).tanh())
    cell, _ = _cell(step)
    xs, ys = _data(np.random.default_rng(4))
    run = _replay_engine_run(cell, xs, ys, reset=count.clear)
    assert run.replayed is None and "different programs" in run.not_replayed
    for k in (1.0, 0.5, 2.0):     # one object per cell: replayed, each with its own setting
        gain = _Gain(k)
        cell, _ = _cell(lambda h, x, W, U: tg.apply("gain", gain.forward,
                                                    (h @ W.T + x @ U.T).tanh()))
        assert _replay_engine_run(cell, xs, ys).replayed == (2, T)


def test_a_cell_does_not_run_the_code_made_for_another_cells_closures():
    """Two cells whose ops are closures over their own arrays, equal when the first was
    recorded: the second shared the code made for the first, which calls the first cell's
    closures, and read the first cell's array as it is now (changed since: loss off by 0.42
    here, 2.2 in another cell)."""
    def make(k):
        scale = np.full(3, k)

        def step(h, x, W, U):
            def scaled(a):
                return a * scale, (lambda g: g * scale,)
            return tg.apply("scaled", scaled, (h @ W.T + x @ U.T).tanh())
        return _cell(step)[0], scale
    xs, ys = _data(np.random.default_rng(4))
    first, scale = make(1.0)
    first.loss(xs, ys)
    scale[...] = 2.0          # the first cell's setting changes (an annealed temperature)
    second, _ = make(1.0)
    assert _replay_engine_run(second, xs, ys).replayed == (2, T)
    first_again = _replay_engine_run(first, xs, ys)     # the first, run again, reads 2.0
    assert first_again.replayed == (2, T)


def test_a_cell_does_not_run_the_code_made_for_an_op_of_other_keyword_only_defaults():
    """Two cells whose ops are the same code with a setting given as a keyword-only default
    (``def op(x, *, s=scale)``, made per cell): the defaults were compared, the keyword-only
    ones not, so the second cell ran the code made for the first cell's op, s = 0.5 for 0.9
    (loss 15.32 for 15.53, without a word)."""
    def make(scale):
        def scaled_tanh(x, *, s=scale):
            y = np.tanh(x) * s
            return y, (lambda g: g * s * (1 - (y / s) ** 2),)

        return _cell(lambda h, x, W, U: tg.apply("scaled_tanh", scaled_tanh,
                                                  h @ W.T + x @ U.T))[0]
    xs, ys = _data(np.random.default_rng(0))
    assert _replay_engine_run(make(0.5), xs, ys).replayed == (2, T)
    assert _replay_engine_run(make(0.9), xs, ys).replayed == (2, T)


@pytest.mark.parametrize("lags", [{}, {"h": 2}])
def test_a_weight_that_multiplies_rows_of_two_shapes_in_a_step_replays(lags):
    """The replay's backward sums a^T g of a weight over the steps with one product of the
    stacked a's: a step that multiplies the weight by its rows and by one row of them (a
    summary) made pairs of two shapes, and np.stack raised a bare ValueError where the engine
    ran."""
    def step(s, x, W, U):
        h = s["h"]
        z = h @ W + h[:1] @ W + h[0] @ W + x @ U.T      # W itself: a tensor from outside
        if lags:
            z = z + s[rnn.core.lagged("h", 2)] @ W
        return {"h": z.tanh()}
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.3, size=(3, 3)), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(3, 2)), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")
    cell = rnn.Recurrence(lambda s, x: step(s, x, W, U), [W, U, V], {"h": 3}, n_in=2,
                          readout=lambda s: s["h"] @ V.T)
    cell.lags = lags
    for batch in (2, 3):
        run = _replay_engine_run(cell, *_data(rng, batch))
        assert run.replayed == (max(lags.values(), default=1) + 1, T)


@pytest.mark.parametrize("name", ["elman", "lstm"])
def test_an_unroll_that_finds_its_loops_made_replays_every_step_in_them(name, monkeypatch):
    """The first unroll of a step runs its first replayed step alone and makes the loops for
    its values; an unroll that finds them made (an equal program: the same cell again) runs
    every replayed step in the loop, the first one's mask too.  Both as replay off."""
    monkeypatch.setattr(tape, "_known", {})
    model, rng = _fresh(name)
    xs, ys = rng.integers(0, 4, size=(T, 3)), rng.integers(0, 4, size=(T, 3))
    mask = np.ones((T, 3))
    mask[1, 0] = mask[1:4, 2] = 0     # the first replayed step (t=2) carries a row's state
    made = []
    compile_scan = tape.compile_scan

    def counted(program, n_carry, values, rules):
        made.append(values is not None)
        return compile_scan(program, n_carry, values, rules)
    monkeypatch.setattr(tape, "compile_scan", counted)
    off = _loss_and_grads(model, (xs, ys), {"mask": mask}, "engine")
    for _ in range(2):
        _close(_loss_and_grads(model, (xs, ys), {"mask": mask}, "replay"), off)
    assert made == [True, False]


def test_the_gradient_with_respect_to_a_replayed_state_is_refused_not_zero():
    """``tg.grad(run.loss, run.states)`` after ``run_for_loss``: the state of a replayed step is
    a row of the replay's block made when asked for, not the node the loss and the later steps
    used, so its gradient was zeros (the engine and ``run`` give norms 0.5-1.1 for this Elman
    RNN), or only what reached the row itself.  It is refused and says why; the steps run as
    engine ops, and replay off, give the gradients."""
    model, rng = _fresh("elman")
    xs, ys = rng.integers(0, 4, size=(T, 2)), rng.integers(0, 4, size=(T, 2))
    run = model.run_for_loss(xs, ys)
    assert run.replayed == (2, T)
    with pytest.raises(tg.BackwardError, match=r"input 1: .*states 'h' of 11 steps, of which "
                                               r"10 were replayed .*'elman/t=2\.\.11'"):
        tg.grad(run.loss, list(run.states))
    with pytest.raises(tg.BackwardError, match="input 0: .*replayed"):
        tg.grad(run.loss + (run.last ** 2).sum(), run.last)
    with pytest.raises(tg.BackwardError, match="retain_grad: .*replayed"):
        run.states[6].retain_grad()
    heads = tg.grad(run.loss, list(run.states[:1]))      # the engine's step: a node of the loss
    model.replayable = False
    try:
        off = model.run_for_loss(xs, ys)
        every = tg.grad(off.loss, list(off.states))
    finally:
        model.replayable = True
    per_step = model.run(xs, ys)
    for a, b, c in zip(heads + every[1:], every, tg.grad(per_step.loss, list(per_step.states))):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b, c, rtol=1e-12, atol=1e-14)
    assert all(np.abs(g).sum() > 0 for g in every)


def test_a_parameter_that_gets_no_gradient_in_the_step_keeps_none():
    """An op whose vjp for an input is None (``tg.apply``'s "no gradient"), and a parameter
    the step reads only for a value it does not return: the engine's backward called the None
    (a bare TypeError in every path), and the replay gave such a parameter a gradient of zeros
    where the engine leaves None (an optimizer skips None; Adam or weight decay would move it)."""
    rng = np.random.default_rng(2)
    gain = tg.Parameter(np.full(3, 0.9), name="gain")
    unused = tg.Parameter(rng.normal(size=(3, 3)), name="unused")

    def scale(a, k):
        return a * k, (lambda g: g * k, None)

    def step(h, x, W, U):
        (h @ unused).tanh()                     # computed, not returned
        return tg.apply("scale", scale, (h @ W.T + x @ U.T).tanh(), gain)
    cell, _ = _cell(step)
    xs, ys = _data(rng)
    assert _replay_engine_run(cell, xs, ys).replayed == (2, T)
    for how in ("replay", "engine", "run"):
        cell.replayable = how == "replay"
        try:
            (cell.run if how == "run" else cell.run_for_loss)(xs, ys).loss.backward()
        finally:
            cell.replayable = True
        assert gain.grad is None and unused.grad is None, how


def test_backward_twice_with_one_grad_array_recomputes_the_replayed_gradients():
    """The replay node computes all its parents' gradients at once and kept them for the
    array g it was given: a second backward handing over the same array (a grad= array used
    again, or changed in place) got the first sweep's gradients, among them the input map's
    Owned buffer that sweep had added the engine's steps' rows into (U's gradient was off by
    0.85 the second time)."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(3, 2)), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")
    cell = rnn.Recurrence(lambda h, x: (h @ W.T + x).tanh(), [W, U, V], 3, n_in=2,
                          input_map=lambda x: x @ U.T, readout=lambda h: h @ V.T)
    xs, ys = rng.normal(size=(T, 2, 2)), rng.integers(0, 4, size=(T, 2))
    G = rng.normal(size=(T, 2, 3))
    got = {}
    for replayable in (True, False):
        cell.replayable = replayable
        run = cell.run_for_loss(xs, ys)
        assert (run.replayed is not None) == replayable
        out = replay.stacked(run.parts["h"]) + 0.0      # add hands g on as it is
        g, got[replayable] = G.copy(), []
        for scale in (1.0, 1.0, 3.0):
            g *= scale               # the same array, the third time with other values
            cell.zero_grad()
            out.backward(g, retain_graph=True)
            got[replayable].append([W.grad.copy(), U.grad.copy()])
    cell.replayable = True
    for a, b in zip(got[True], got[False]):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


def test_an_input_map_the_step_does_not_read_keeps_a_gradient_of_none():
    """A step that does not read its input: the engine leaves the input map's weight (and a
    Tensor input) without a gradient, and the replay gave them zeros (an optimizer skips a
    None gradient; weight decay or momentum would move a zero one), also under create_graph."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(scale=0.5, size=(3, 3)), name="W")
    U = tg.Parameter(rng.normal(scale=0.5, size=(3, 2)), name="U")
    V = tg.Parameter(rng.normal(scale=0.5, size=(4, 3)), name="V")
    cell = rnn.Recurrence(lambda h, x: (h @ W.T).tanh() + 0.1, [W, U, V], 3, n_in=2,
                          input_map=lambda x: x @ U.T, readout=lambda h: h @ V.T)
    xs, ys = _data(rng)
    first = {}
    for how in ("replay", "engine", "run"):
        for create_graph in (False, True):
            cell.replayable = how == "replay"
            cell.zero_grad()
            x = tg.Tensor(xs, requires_grad=True)
            try:
                run = (cell.run if how == "run" else cell.run_for_loss)(x, ys)
            finally:
                cell.replayable = True
            assert (run.replayed is not None) == (how == "replay")
            run.loss.backward(create_graph=create_graph)
            assert U.grad is None and x.grad is None, (how, create_graph)
            w = W.grad.data if create_graph else W.grad
            np.testing.assert_allclose(w, first.setdefault("W", w), rtol=1e-12, atol=1e-14)


def test_a_step_that_indexes_its_state_with_an_empty_tuple_replays():
    """h[()] in a step: the scan's check for slices that tile a slot raised a bare IndexError
    where the engine ran."""
    cell, _ = _cell(lambda h, x, W, U: (h[()] @ W.T + x @ U.T).tanh())
    got = _both(cell, *_data(np.random.default_rng(0)))
    assert got[0][0].replayed == (2, T)
    _equal_results(got)


@pytest.mark.parametrize("masked", [False, True])
def test_a_scan_writes_an_input_gradient_into_rows_made_at_its_first_write(masked):
    """compile_scan's backward takes a tape.Rows for an input's gradient (what rnn.replay hands
    it: the array is made only when a step writes a row, None if none does) as well as an
    array: the same rows, bit for bit, with and without masks."""
    (forward, backward), W, h0, _ = _scanned_step()
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(5, 4, 3))
    masks = [None] * 5
    if masked:
        masks[2] = np.asarray([[1.0], [0.0], [1.0], [1.0]])
    saved = forward([h0], [xs], list(range(5)), masks, [np.empty((5, 4, 3))], list(range(5)),
                    [W.data])
    g_out = rng.normal(size=(5, 4, 3))
    got = []
    for gx in (np.zeros((5, 4, 3)), tape.Rows((5, 4, 3), np.dtype(np.float64))):
        (g_h0,), (g_W,) = backward(saved, [g_out], masks, list(range(5)), [gx], [[]])
        got.append((gx if isinstance(gx, np.ndarray) else gx.array, g_h0, g_W))
    for a, b in zip(*got):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert got[1][0].shape == (5, 4, 3)
    untouched = tape.Rows((5, 4, 3), np.dtype(np.float64))
    assert untouched.array is None
    untouched[1] = np.ones((4, 3))
    assert untouched.array[1].sum() == 12 and untouched.array[0].sum() == 0


def test_replayed_masked_steps_read_each_steps_mask_in_both_directions(monkeypatch):
    """The replay makes every step's mask once and hands the same list to its forward and
    backward loops (and the row each step writes, t ascending or descending): a bidirectional
    model with masks, both chains replayed, gives the engine's loss and gradients."""
    directions = []
    made = replay.Replay.__init__

    def noted(self, *args):
        made(self, *args)
        directions.append((self.backwards, self.keep is not None))
    monkeypatch.setattr(replay.Replay, "__init__", noted)
    model = rnn.BidirectionalRNN(4, 3, 4, seed=1)
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, 4, size=(T, 3)), rng.integers(0, 4, size=(T, 3))
    mask = np.ones((T, 3), bool)
    mask[7:, 1] = False
    mask[4:, 2] = False
    replayed = _loss_and_grads(model, (xs, ys), {"mask": mask}, "replay")
    assert sorted(directions) == [(False, True), (True, True)]
    _close(replayed, _loss_and_grads(model, (xs, ys), {"mask": mask}, "engine"))


def test_the_input_table_of_ids_is_one_node_with_the_bits_of_a_transpose_and_a_sum():
    """``loss`` gathers U x + b for ids from the table U^T + b made as one node
    (``transpose_add``, no transposed copy of U first); its value and gradients are those of
    ``transposed(U) + b`` bit for bit, also under create_graph and for mixed dtypes, and the
    per-step graph the diagrams draw keeps the transpose and the sum."""
    from rnn import core
    rng = np.random.default_rng(0)
    for w_dtype, b_dtype in ((np.float64, np.float64), (np.float32, np.float32),
                             (np.float32, np.float64)):
        W = tg.Parameter(rng.normal(size=(3, 5)), name="W", dtype=w_dtype)
        b = tg.Parameter(rng.normal(size=(3,)), name="b", dtype=b_dtype)
        fused, two = core.transposed_plus(W, b), core.transposed(W) + b
        assert fused.op == "transpose_add" and fused.data.flags.c_contiguous
        assert fused.dtype == two.dtype and np.array_equal(fused.data, two.data)
        g = rng.normal(size=(5, 3)).astype(fused.dtype)
        for got, want in zip(tg.grad(fused, [W, b], grad=g), tg.grad(two, [W, b], grad=g)):
            assert got.dtype == want.dtype and np.array_equal(got, want)
        second = []
        for table in (core.transposed_plus(W, b), core.transposed(W) + b):
            gW, gb = tg.grad((table * table).sum(), [W, b], create_graph=True)
            second.append(tg.grad((gW * gW).sum() + gb.sum(), [W, b]))
        for got, want in zip(*second):
            assert np.array_equal(got, want)
    model = rnn.ElmanRNN(4, 3, 4, seed=0)
    xs, ys = np.zeros((T, 2), dtype=int), np.ones((T, 2), dtype=int)
    assert "transpose_add" in _graph_ops(model.loss(xs, ys))
    ops = _graph_ops(model.run(xs, ys).loss)
    assert "transpose_add" not in ops and "transpose" in ops and "add" in ops


def test_the_loss_of_all_steps_is_one_cross_entropy_node_with_the_bits_of_the_two_ops(monkeypatch):
    """``loss`` takes the cross-entropy of every step's rows and its scale (T / B) as one node
    (``tg.ops.scaled_cross_entropy``), not a cross_entropy node and a mul node; its value and
    gradient are those of ``cross_entropy(o, y) * scale`` bit for bit, also under create_graph,
    and its backward reuses the forward's row log-sum-exp (computed once per loss + backward,
    not twice)."""
    from tinygraph import ops
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        for ids in (rng.integers(0, 5, size=7), tg.Tensor(rng.integers(0, 5, size=7))):
            o = tg.Parameter(rng.normal(scale=4.0, size=(7, 5)), dtype=dtype)
            fused, two = ops.scaled_cross_entropy(o, ids, 11 / 3), tg.cross_entropy(o, ids) * (11 / 3)
            assert fused.op == "cross_entropy" and fused.dtype == two.dtype == dtype
            assert np.array_equal(fused.data, two.data)
            for g in (None, np.asarray(0.7, dtype)):
                got, want = (tg.grad(y, [o], grad=g, retain_graph=True)[0] for y in (fused, two))
                assert got.dtype == want.dtype and np.array_equal(got, want)
            second = []
            for loss in (ops.scaled_cross_entropy(o, ids, 11 / 3), tg.cross_entropy(o, ids) * (11 / 3)):
                (g_o,) = tg.grad(loss, [o], create_graph=True)
                second.append(tg.grad((g_o * g_o).sum(), [o])[0])
            assert np.array_equal(*second)
    with pytest.raises(tg.BadIndexError, match="cross_entropy: target 5 out of range"):
        ops.scaled_cross_entropy(o, np.full(7, 5), 1.0)
    calls = []
    row_logsumexp = ops._row_logsumexp
    monkeypatch.setattr(ops, "_row_logsumexp", lambda x: calls.append(x.shape) or row_logsumexp(x))
    model = rnn.ElmanRNN(4, 3, 4, seed=0)
    xs, ys = rng.integers(0, 4, size=(T, 2)), rng.integers(0, 4, size=(T, 2))
    for mask in (None, np.arange(T)[:, None] < np.array([T, T - 3])):
        calls.clear()
        loss = model.loss(xs, ys, mask=mask)
        assert loss.op == "cross_entropy" and "mul" not in _graph_ops(loss)
        loss.backward()
        assert len(calls) == 1


# ------------------------------------------------------------------ generated cells

# A grammar of steps: what the leaves and ops a user's cell is made of, drawn by hypothesis.
# Each generated cell is unrolled by ``loss`` (replayed from a recorded step) and by ``run``
# (every op a node of its step), with and without a mask, a batch, an h0, float32, two state
# parts of different widths, an input map giving a dict, and a tensor made outside the unroll
# that requires grad: the loss and every gradient must agree.
_UNARY = {
    "tanh": lambda a: a.tanh(), "sigmoid": lambda a: a.sigmoid(), "relu": lambda a: a.relu(),
    "square": lambda a: a * a, "sin": tg.sin, "softmax": lambda a: tg.softmax(a, axis=-1),
    "log_softmax": lambda a: tg.log_softmax(a, axis=-1), "clip": lambda a: a.clip(-0.5, 0.7),
    "gelu": tg.gelu, "softplus": tg.softplus, "abs": abs, "flip": lambda a: tg.flip(a, -1),
    "cumsum": lambda a: a.cumsum(-1), "rowmax": lambda a: a.max(axis=-1, keepdims=True) + a,
    "centre": lambda a: a - a.mean(axis=-1, keepdims=True), "pick": lambda a: a[..., [2, 0, 0]],
    "ratio": lambda a: a / (1.0 + a * a), "root": lambda a: (a * a + 1.0) ** 0.5,
    "roll": lambda a: tg.concat([a[..., 1:], a[..., :1]], axis=-1),
    "lse": lambda a: tg.logsumexp(a, axis=-1).unsqueeze(-1) * 0.2 + a,
}
_BINARY = {
    "add": lambda a, b, P: a + b, "mul": lambda a, b, P: a * b,
    "max": lambda a, b, P: tg.maximum(a, b), "min": lambda a, b, P: tg.minimum(a, b),
    "matmul": lambda a, b, P: a @ P["W"].T + b, "where": lambda a, b, P: tg.where(
        np.array([True, False, True]), a, b),
}
_LEAVES = ("h", "g", "u", "u2", "b", "outside")
_steps = st.recursive(st.sampled_from(_LEAVES), lambda inner: st.one_of(
    st.tuples(st.sampled_from(sorted(_UNARY)), inner),
    st.tuples(st.sampled_from(sorted(_BINARY)), inner, inner)), max_leaves=6)


def _evaluate(expr, env):
    if isinstance(expr, str):
        return env[expr]
    if len(expr) == 2:
        return _UNARY[expr[0]](_evaluate(expr[1], env))
    return _BINARY[expr[0]](_evaluate(expr[1], env), _evaluate(expr[2], env), env)


def _generated_cell(first, second, two_parts, input_map, dtype):
    rng = np.random.default_rng(3)
    P = {name: tg.Parameter(rng.normal(scale=0.5, size=shape).astype(dtype), name=name)
         for name, shape in (("W", (3, 3)), ("G", (3, 2)), ("b", (3,)), ("U", (3, 2)),
                             ("U2", (3, 2)), ("V", (4, 3)), ("S", (3,)))}
    made = {}          # the tensor made outside the unroll, made again before each unroll

    def step(state, u):
        if isinstance(u, dict):
            u, u2 = u["a"], u["b"]
        elif input_map:
            u2 = u
        else:
            u = u2 = u @ P["U"].T
        h = state["h"] if two_parts else state
        g = state["g"] @ P["G"].T if two_parts else h
        env = {**P, "h": h, "g": g, "u": u, "u2": u2, "outside": made["outside"]}
        h_new = (_evaluate(first, env) + u).tanh()
        if not two_parts:
            return h_new
        return {"h": h_new, "g": ((_evaluate(second, env) + u2) @ P["G"]).tanh()}

    def readout(state):
        if two_parts:
            return (state["h"] + state["g"] @ P["G"].T) @ P["V"].T
        return state @ P["V"].T

    maps = {0: None, 1: lambda x: x @ P["U"].T + P["b"],
            2: lambda x: {"a": x @ P["U"].T + P["b"], "b": x @ P["U2"].T}}
    cell = rnn.Recurrence(step, list(P.values()), {"h": 3, "g": 2} if two_parts else 3,
                          n_in=2, readout=readout, input_map=maps[input_map], name="drawn")
    return cell, P, made


@settings(max_examples=40, deadline=None)
@given(first=_steps, second=_steps, two_parts=st.booleans(), input_map=st.sampled_from([0, 1, 2]),
       steps=st.integers(6, 11), batch=st.sampled_from([None, 1, 3]), masked=st.booleans(),
       with_h0=st.booleans(), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 50))
def test_generated_cells_replay_to_the_loss_and_gradients_of_run(first, second, two_parts,
                                                                 input_map, steps, batch, masked,
                                                                 with_h0, dtype, seed):
    cell, P, made = _generated_cell(first, second, two_parts, input_map, dtype)
    rng = np.random.default_rng(seed)
    lead = (steps,) if batch is None else (steps, batch)
    xs = rng.normal(size=lead + (2,)).astype(dtype)
    ys = rng.integers(0, 4, size=lead)
    mask = None
    if masked and batch is not None:
        mask = np.arange(steps)[:, None] < rng.integers(1, steps + 1, size=batch)[None]
    h0 = None
    if with_h0:
        rows = () if batch is None else (batch,)
        h0 = rng.normal(size=rows + (3,)).astype(dtype)
        h0 = {"h": h0, "g": rng.normal(size=rows + (2,)).astype(dtype)} if two_parts else h0
    got = []
    for how in ("run", "loss"):
        made["outside"] = (P["S"] * 2.0).tanh()
        cell.zero_grad()
        unrolled = (cell.run(xs, ys, h0=h0, mask=mask) if how == "run"
                    else cell.run_for_loss(xs, ys, h0=h0, mask=mask))
        unrolled.loss.backward()
        got.append((unrolled, unrolled.loss.item(),
                    {k: None if p.grad is None else p.grad.copy() for k, p in P.items()}))
    (_, loss_run, grads_run), (replayed, loss, grads) = got
    assert replayed.replayed == (2, steps) and replayed.not_replayed is None
    tol = 1e-10 if dtype == np.float64 else 2e-4
    assert abs(loss - loss_run) <= tol * max(1.0, abs(loss_run))
    for name, g in grads_run.items():
        if g is None:
            assert grads[name] is None or not grads[name].any(), name
            continue
        np.testing.assert_allclose(grads[name], g, rtol=tol, atol=tol * max(1.0, abs(g).max()),
                                   err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("design", [rnn.LSTM, rnn.GRU])
def test_a_replayed_steps_kept_arrays_are_rows_of_one_block(monkeypatch, design, dtype):
    """The compiled forward loop makes each fresh array a step keeps for its backward (the
    sigmoid's pair of output and exp(-|x|), a tanh's output) as row i of one block for all the
    loop's steps, made before the first (``tape._BLOCK_BYTES``, ``tape._BLOCKS_FROM``; here
    every size), not as an array of its own per step: the steps' sigmoid outputs are rows of
    one (n, 2, ...) block, whose second rows the sigmoid's gradient reads; below
    ``_BLOCKS_FROM`` bytes for all steps (as here by default) the same code makes an array per
    step.  Loss and gradients (masked rows too) are those of the loop with an array per step,
    bit for bit, and replay off's to rounding."""
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(0, 5, (T, 3)), rng.integers(0, 5, (T, 3))
    mask = np.ones((T, 3))
    mask[T - 2:, 1] = 0
    results = []
    for size, start in ((1, 0), (1, tape._BLOCKS_FROM), (1 << 62, 0)):
        monkeypatch.setattr(tape, "_BLOCK_BYTES", size)
        monkeypatch.setattr(tape, "_BLOCKS_FROM", start)
        monkeypatch.setattr(tape, "_known", {})
        monkeypatch.setattr(tape, "_compiled", {})
        model = design(5, 4, 5, seed=1, dtype=dtype)
        loss = model.loss(xs, ys, mask=mask)
        replay = _replay_of(loss)
        loop = [s for s in tape._compiled if s.startswith("def forward(carry")][-1]
        sigmoids = [j for j, op in enumerate(replay.program.ops) if op[0] == "sigmoid"]
        assert sigmoids
        for j in sigmoids:
            outs = [values[replay.program.first_op + j] for values, _ in replay.saved[1:]]
            bases = {id(out.base) for out in outs}
            if size == 1:
                assert "BK0 = L_empty((len(rows),) + BS0, BT0) if BIG else None" in loop
            if size == 1 and start == 0:
                assert len(bases) == 1 and outs[0].base.shape == (len(outs), 2) + outs[0].shape
                for i, out in enumerate(outs):
                    assert np.shares_memory(ops._kept_exp(out), out.base[i, 1])
            else:
                assert ("BK0" in loop) == (size == 1) and len(bases) == len(outs)
        loss.backward()
        results.append([loss.data] + [p.grad for p in model.parameters()])
    _same_bits_and_replay_offs(results, design(5, 4, 5, seed=1, dtype=dtype), xs, ys, mask)


def _same_bits_and_replay_offs(results, model, xs, ys, mask):
    """Each of ``results`` ([loss, gradients...] of forms of one replayed loss) is the first's
    bit for bit, and the first is ``model``'s with replay off, to rounding (1e-12 in float64,
    1e-5 in float32)."""
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    model.replayable = False
    loss = model.loss(xs, ys, mask=mask)
    loss.backward()
    tol = 1e-12 if model.dtype == np.float64 else 1e-5
    for a, b in zip(results[0], [loss.data] + [p.grad for p in model.parameters()]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 1e-2)


def test_kept_exp_finds_a_pair_that_is_a_row_of_a_block():
    """The sigmoid's gradient reads exp(-|x|) beside an output that is ``block[i, 0]`` of an
    (n, 2, ...) block (a replay's steps), and nothing for any other view of the block."""
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    block = np.empty((3, 2, 4, 5))
    for i in range(3):
        block[i, 1] = np.exp(-np.abs(x[i]))
        block[i, 0] = 1 / (1 + np.exp(-x[i]))
    for i in range(3):
        e = ops._kept_exp(block[i, 0])
        assert e is not None and np.shares_memory(e, block[i, 1]) and e.shape == (4, 5)
        np.testing.assert_array_equal(ops._sigmoid_slope(block[i, 0], None),
                                      ops._sigmoid_slope(np.array(block[i, 0]), x[i]))
        assert ops._kept_exp(block[i, 1]) is None           # the kept row is no output
    assert ops._kept_exp(block[0, 0, 1:]) is None          # another shape
    assert ops._kept_exp(block[:, 0][1]) is not None        # the same view, made another way
    assert ops._kept_exp(block.reshape(6, 4, 5)[2]) is not None    # block[1, 0], as above
    assert ops._kept_exp(np.empty((0, 2, 4, 5))[:1, 0]) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_gated_steps_gradient_is_computed_in_its_input_rows_gradient(monkeypatch, dtype):
    """An LSTM's gates z = x + h W are sliced into blocks whose gradients fill z's gradient,
    which is then the whole gradient of the step's input row x: the compiled backward makes
    that buffer row r of the input's gradient (``tape._row_of``) instead of a new array copied
    into the row after the step.  Loss and gradients (masked rows too) are those of the
    copying loop bit for bit, and replay off's to rounding."""
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(0, 5, (T, 3)), rng.integers(0, 5, (T, 3))
    mask = np.ones((T, 3))
    mask[T - 2:, 1] = 0
    results = []
    made = []
    for rowed in (True, False):
        monkeypatch.setattr(tape, "_known", {})
        monkeypatch.setattr(tape, "_compiled", {})
        if not rowed:
            monkeypatch.setattr(tape, "_rowed_blocks", lambda *args: {})
        monkeypatch.setattr(tape, "_row_of", lambda gx, r, like, f=tape._row_of:
                            made.append(r) or f(gx, r, like))
        model = rnn.LSTM(5, 4, 5, seed=1, dtype=dtype)
        loss = model.loss(xs, ys, mask=mask)
        loss.backward()
        loop = [s for s in tape._compiled if s.startswith("def backward(saved, ups")][-1]
        assert ("= _row_of(GX0, r, Z" in loop and "if g2 is not RW0: GX0[r] = g2" in loop) \
            == rowed
        results.append([loss.data] + [p.grad for p in model.parameters()])
    assert sorted(made) == list(range(1, T))      # every replayed step's row, once
    _same_bits_and_replay_offs(results, rnn.LSTM(5, 4, 5, seed=1, dtype=dtype), xs, ys, mask)


def test_row_of_gives_a_row_only_where_it_fits():
    """:func:`tape._row_of`: row r of an input's gradient (made from a Rows) when it is a
    C-contiguous array of the buffer's shape and dtype, else a new array."""
    like = tape._Shape((2, 3), np.dtype(np.float64))
    rows = tape.Rows((4, 2, 3), np.float64)
    row = tape._row_of(rows, 1, like)
    assert rows.array is not None and np.shares_memory(row, rows.array[1])
    for gx in (np.zeros((4, 2, 3), np.float32), np.zeros((4, 3, 2)).transpose(0, 2, 1),
               np.zeros((4, 2, 4))):
        other = tape._row_of(gx, 1, like)
        assert not np.shares_memory(other, gx) and (other.shape, other.dtype) == ((2, 3),
                                                                                  like.dtype)


def test_an_input_row_read_twice_keeps_its_own_buffer_for_the_gates_gradient(monkeypatch):
    """The gates' gradient is made in the input row's gradient only where the row is read by
    nothing else: here it also feeds h, so the row gets the sum of both after the step, while
    the weight's deferred a^T g must read the gates' part alone (the row made it wrong: Wh's
    gradient off by its own size).  Replay equals replay off to 1e-12."""
    monkeypatch.setattr(tape, "_known", {})
    monkeypatch.setattr(tape, "_compiled", {})
    H, V, rng = 3, 4, np.random.default_rng(0)
    P = [tg.Parameter(rng.normal(size=shape) * 0.5, name=name)
         for name, shape in (("Ux", (4 * H, V)), ("Wh", (4 * H, H)), ("V", (V, H)))]

    def step(state, u):
        z = tg.addmm(u, state["h"], P[1].T)
        gates = z[..., :3 * H].sigmoid()
        s = gates[..., :H] * state["s"] + gates[..., H:2 * H] * z[..., 3 * H:].tanh()
        return {"s": s, "h": s.tanh() * gates[..., 2 * H:] + u[..., :H] * u[..., H:2 * H]}
    cell = rnn.Recurrence(step, P, {"s": H, "h": H}, n_in=V,
                          readout=lambda state: state["h"] @ P[2].T,
                          input_map=lambda ids: tg.take(P[0].T, ids, axis=0), name="cell")
    xs, ys = rng.integers(0, V, (T, 2)), rng.integers(0, V, (T, 2))
    got = []
    for replayable in (True, False):
        cell.replayable = replayable
        cell.zero_grad()
        loss = cell.loss(xs, ys)
        loss.backward()
        got.append([loss.data] + [p.grad.copy() for p in P])
    loops = [s for s in tape._compiled if s.startswith("def backward(saved, ups")]
    assert loops and not any("_row_of" in source for source in loops)
    for a, b in zip(*got):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- a constant changed after the forward


def _masked_cell():
    """A cell whose step reads a tensor that needs no gradient (a constant of its program)."""
    scale = tg.tensor(np.array([1.0, 0.5, 2.0]), name="scale")
    cell, params = _cell(lambda h, x, W, U: (h @ W.T + x @ U.T).tanh() * scale)
    return cell, params, scale


def _grads_after_write(cell, params, how, forward, write, create_graph=False):
    """The loss's gradients when ``write`` changes the constant between forward and backward."""
    cell.zero_grad()
    cell.replayable = how != "engine"
    try:
        run = forward(how)
    finally:
        cell.replayable = True
    assert (run.replayed is not None) == (how == "loss")
    write()
    if create_graph:
        grads = tg.grad(run.loss, params, create_graph=True)
        return [g.data for g in grads]
    run.loss.backward()
    return [p.grad.copy() for p in params]


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_constant_written_through_data_after_the_forward_is_read_by_backward_replayed_or_not(
        create_graph):
    # the engine's nodes read the constant's array in backward, so a write through .data
    # (no version bump, as PyTorch's) gives the gradient of the new values at the forward's
    # states; the replayed steps read the copy recorded with the step, so `loss` gave the
    # old values' gradient where `run` gave the new ones'
    cell, params, scale = _masked_cell()
    xs, ys = _data(np.random.default_rng(0))
    old, new = np.array([1.0, 0.5, 2.0]), np.array([3.0, -1.0, 0.25])

    def forward(how):
        scale.data[...] = old
        return cell.run(xs, ys) if how == "run" else cell.run_for_loss(xs, ys)

    def write():
        scale.data[...] = new
    got = {how: _grads_after_write(cell, params, how, forward, write, create_graph)
           for how in ("loss", "engine", "run")}
    unchanged = _grads_after_write(cell, params, "engine", forward, lambda: None, create_graph)
    assert not np.allclose(got["run"][0], unchanged[0])      # the write matters
    for how in ("loss", "engine"):
        for a, b in zip(got[how], got["run"]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=how)


def test_a_constant_replaced_through_data_after_the_forward_leaves_backward_on_the_old_array():
    # `.data = array` replaces the tensor's array: the engine's nodes keep the one they saved
    cell, params, scale = _masked_cell()
    xs, ys = _data(np.random.default_rng(1))

    def forward(how):
        scale.data = np.array([1.0, 0.5, 2.0])
        return cell.run(xs, ys) if how == "run" else cell.run_for_loss(xs, ys)

    def write():
        scale.data = np.array([3.0, -1.0, 0.25])
    got = {how: _grads_after_write(cell, params, how, forward, write) for how in ("loss", "run")}
    unchanged = _grads_after_write(cell, params, "run", forward, lambda: None)
    for a, b, c in zip(got["loss"], got["run"], unchanged):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b, c, rtol=1e-12, atol=1e-14)
