"""Cells: a user's own recurrence with a state of named parts, an input map and a readout gets
everything the built-in designs get: exact gradients, the batched loss, masks, truncated BPTT,
and one delay per state part in the folded view."""

import copy
import re

import numpy as np
import pytest

import bptt_reference as ref
import rnn
import tinygraph as tg
import viz

N_IN, H, N_OUT = 3, 4, 5


def _params(names_shapes, seed):
    rng = np.random.default_rng(seed)
    return {name: tg.Parameter(rng.normal(0, 0.5, shape), name=name)
            for name, shape in names_shapes.items()}


def user_lstm(seed=0, edge_label=None):
    """An LSTM as a user writes it: state {"s", "h"}, the input projections in input_map."""
    shapes = {}
    for gate in ("f", "g", "o", ""):
        shapes.update({f"U{gate}": (H, N_IN), f"W{gate}": (H, H), f"b{gate}": (H,)})
    shapes.update({"V": (N_OUT, H), "c": (N_OUT,)})
    P = _params(shapes, seed)

    def input_map(x):
        return {gate: x @ P[f"U{gate}"].T + P[f"b{gate}"] for gate in ("f", "g", "o", "")}

    def step(state, u):
        h = state["h"]
        f = (u["f"] + h @ P["Wf"].T).sigmoid().named("f")
        g = (u["g"] + h @ P["Wg"].T).sigmoid().named("g")
        q = (u["o"] + h @ P["Wo"].T).sigmoid().named("q")
        s = f * state["s"] + g * (u[""] + h @ P["W"].T).tanh()
        return {"s": s, "h": s.tanh() * q}

    cell = rnn.Recurrence(step, list(P.values()), {"s": H, "h": H}, n_in=N_IN,
                          readout=lambda state: state["h"] @ P["V"].T + P["c"],
                          input_map=input_map, name="lstm", edge_label=edge_label)
    return cell, P


def user_gru(seed=0):
    """A GRU as a user writes it (one state part h; the gates named for the diagrams)."""
    shapes = {}
    for gate in ("u", "r", ""):
        shapes.update({f"U{gate}": (H, N_IN), f"W{gate}": (H, H), f"b{gate}": (H,)})
    shapes.update({"V": (N_OUT, H), "c": (N_OUT,)})
    P = _params(shapes, seed)

    def step(h, x):
        u = (x @ P["Uu"].T + h @ P["Wu"].T + P["bu"]).sigmoid().named("u")
        r = (x @ P["Ur"].T + h @ P["Wr"].T + P["br"]).sigmoid().named("r")
        z = (x @ P["U"].T + (r * h) @ P["W"].T + P["b"]).tanh()
        return u * h + (1 - u) * z

    cell = rnn.Recurrence(step, list(P.values()), H, n_in=N_IN,
                          readout=lambda h: h @ P["V"].T + P["c"], name="gru", edge_label=None)
    return cell, P


def _data(steps, batch, seed=1):
    rng = np.random.default_rng(seed)
    shape = (steps, N_IN) if batch is None else (steps, batch, N_IN)
    ys = rng.integers(0, N_OUT, (steps,) if batch is None else (steps, batch))
    return rng.normal(size=shape), ys


def _mask(steps, batch):
    mask = np.ones((steps, batch), dtype=int)
    mask[-2:, 0] = 0            # the first sequence is two steps shorter
    mask[-1, -1] = 0
    return mask


def _compare(loss, params, expected_loss, expected_grads):
    grads = tg.grad(loss, list(params.values()))
    assert loss.item() == pytest.approx(expected_loss, rel=1e-9)
    for (name, _), g in zip(params.items(), grads):
        np.testing.assert_allclose(g, expected_grads[name], rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def _arrays(params):
    return {k: v.data for k, v in params.items()}


@pytest.mark.parametrize("batch", [None, 1, 3])
@pytest.mark.parametrize("form", ["loss", "run"])
def test_user_lstm_gradients_equal_hand_written_bptt(batch, form):
    cell, P = user_lstm()
    xs, ys = _data(6, batch)
    loss = cell.loss(xs, ys) if form == "loss" else cell.run(xs, ys).loss
    _compare(loss, P, *ref.lstm(_arrays(P), xs, ys))


@pytest.mark.parametrize("form", ["loss", "run"])
def test_user_lstm_masked_batch_equals_hand_written_bptt(form):
    cell, P = user_lstm(seed=2)
    xs, ys = _data(5, 3)
    mask = _mask(5, 3)
    rng = np.random.default_rng(3)
    h0 = {"h": rng.normal(size=(3, H)), "s": rng.normal(size=(3, H))}
    run = cell.loss if form == "loss" else (lambda *a, **k: cell.run(*a, **k).loss)
    _compare(run(xs, ys, h0=h0, mask=mask), P,
             *ref.lstm(_arrays(P), xs, ys, h0=h0["h"], s0=h0["s"], mask=mask))


@pytest.mark.parametrize("batch, masked", [(None, False), (1, False), (3, False), (3, True)])
def test_user_gru_gradients_equal_hand_written_bptt(batch, masked):
    cell, P = user_gru()
    xs, ys = _data(6, batch)
    mask = _mask(6, batch) if masked else None
    _compare(cell.loss(xs, ys, mask=mask), P, *ref.gru(_arrays(P), xs, ys, mask=mask))


@pytest.mark.parametrize("design", ["lstm", "gru"])
def test_the_gated_references_equal_finite_differences(design):
    cell, P = user_lstm() if design == "lstm" else user_gru()
    xs, ys = _data(4, 2)
    mask = np.array([[1, 1], [1, 1], [1, 0], [0, 1]])
    fn = ref.lstm if design == "lstm" else ref.gru
    _, grads = fn(_arrays(P), xs, ys, mask=mask)
    numeric = ref.finite_difference_grads(lambda p: fn(p, xs, ys, mask=mask)[0], _arrays(P))
    for name in P:
        np.testing.assert_allclose(grads[name], numeric[name], rtol=1e-6, atol=1e-8, err_msg=name)


def test_user_lstm_run_has_every_part_and_gate_of_every_step_and_the_loss_of_loss():
    cell, _ = user_lstm()
    xs, ys = _data(4, 2)
    run = cell.run(xs, ys)
    assert run.loss.item() == pytest.approx(cell.loss(xs, ys).item(), rel=1e-12)
    assert set(run.parts) == {"s", "h"} and all(len(v) == 4 for v in run.parts.values())
    assert set(run.states[0]) == {"s", "h"} and set(run.last) == {"s", "h"}
    assert run.parts["h"][2].scope == "lstm/t=3" and run.parts["s"][2].name == "s"


def test_user_lstm_folded_view_has_one_delay_per_state_part():
    cell, _ = user_lstm()
    dot = viz.folded(cell).source
    squares = re.findall(r"^\s*(\S+) \[.*fillcolor=black", dot, flags=re.M)
    assert len(squares) == 2
    ids = dict(re.findall(r"^\s*(f\d+) \[label=<(\w+)>", dot, flags=re.M))
    node = {name: nid for nid, name in ids.items()}
    edges = [(b, a) if "dir=back" in attrs else (a, b)        # (an edge laid out reversed,
             for a, b, attrs in re.findall(r"^\s*(\S+) -> (\S+)(.*)$", dot, flags=re.M)]   # read
    into = {a: b for a, b in edges if b in squares}            # the way it is drawn)
    assert sorted(ids[a] for a in into) == ["h", "s"]          # each part into its own delay
    out_of = [(a, b) for a, b in edges if a in squares]
    from_s = {ids[b] for a, b in out_of if a == into_square(into, node["s"])}
    from_h = {ids[b] for a, b in out_of if a == into_square(into, node["h"])}
    assert from_s == {"s"}                     # s(t-1) feeds only s(t)
    assert {"f", "g", "q", "s"} <= from_h      # h(t-1) feeds every gate and the cell state


def into_square(into, node_id):
    return next(b for a, b in into.items() if a == node_id)


def test_user_lstm_unrolled_view_draws_both_parts_at_every_step():
    cell, _ = user_lstm()
    dot = viz.unrolled(cell, steps=3).source
    for part in ("s", "h"):
        for t in (1, 2, 3):
            assert re.search(rf"label=<.*{part}.*\({t}\)", dot), (part, t)


def test_truncated_bptt_carries_both_parts_of_the_state():
    cell, _ = user_lstm(seed=4)
    xs, ys = _data(12, 2)
    whole = cell.loss(xs, ys).item() / 12
    assert rnn.stream_loss(cell, xs, ys, chunk=5) == pytest.approx(whole, rel=1e-12)
    carried = cell.carry(cell.run_for_loss(xs[:5], ys[:5]))
    assert set(carried["h0"]) == {"s", "h"}
    assert all(not v.requires_grad for v in carried["h0"].values())
    trainer = rnn.Trainer(cell, lr=0.01)
    losses, last = rnn.truncated_bptt(trainer, xs, ys, chunk=4)
    assert len(losses) == 3 and set(last) == {"s", "h"}


def test_user_lstm_trains_and_saves(tmp_path):
    cell, P = user_lstm(seed=5)
    xs, ys = _data(8, 4)
    trainer = rnn.Trainer(cell, lr=0.05)
    losses = [trainer.step(xs, ys)[0] for _ in range(40)]
    assert losses[-1] < 0.6 * losses[0]
    cell.save(tmp_path / "lstm.npz")
    fresh, _ = user_lstm(seed=9)
    fresh.load(tmp_path / "lstm.npz")
    assert fresh.loss(xs, ys).item() == pytest.approx(cell.loss(xs, ys).item(), rel=1e-12)


# ------------------------------------------------------------------ params, names, errors

def test_one_parameter_is_taken_whole_and_trained():
    W = tg.Parameter(np.eye(2) * 0.5, name="W")
    system = rnn.Recurrence(lambda s, x: (s @ W.T + x).tanh(), W, n_state=2, n_in=2,
                            readout=lambda s: s)
    assert system.parameters() == [W]
    before = W.data.copy()
    rnn.Trainer(system, lr=0.1).step(np.ones((3, 2)), np.array([0, 1, 0]))
    assert W.grad is not None and W.grad.shape == (2, 2)
    assert not np.array_equal(W.data, before)


def test_params_may_be_a_module():
    model = rnn.ElmanRNN(2, 3, 2)
    cell = rnn.Recurrence(lambda h, x: (h @ model.W.T + x @ model.U.T).tanh(), model, n_state=3,
                          n_in=2)
    assert cell.parameters() == model.parameters()


@pytest.mark.parametrize("params", [np.eye(2), "W", None, 3, {"W": 1}, [np.eye(2)],
                                    [tg.tensor([1.0])]])
def test_params_that_are_not_parameters_are_refused(params):
    with pytest.raises(tg.ConfigError, match="params"):
        rnn.Recurrence(lambda s: s, params, n_state=2)


@pytest.mark.parametrize("clash", ["x", "o", "L", "y", "s"])
def test_a_name_inside_the_step_that_clashes_is_a_config_error(clash):
    W = tg.Parameter(np.eye(2) * 0.5, name="W")

    def step(state, x):
        g = (x @ W.T).named(clash)
        return {"h": (state["h"] @ W.T + g).tanh(), "s": state["s"]}

    cell = rnn.Recurrence(step, [W], {"h": 2, "s": 2}, n_in=2)
    with pytest.raises(tg.ConfigError, match=f"'{clash}'"):
        cell.run(np.ones((3, 2)))


@pytest.mark.parametrize("clash", ["x", "o", "L", "y", "s"])
def test_a_name_that_clashes_is_refused_by_loss_too(clash):
    """``loss`` runs the batched executor (the input map of all steps at once), which must
    check the step's names as ``run`` does, not train a cell whose diagram would be refused."""
    W = tg.Parameter(np.eye(2) * 0.5, name="W")

    def step(state, u):
        g = (u @ W.T).named(clash)
        return {"h": (state["h"] @ W.T + g).tanh(), "s": state["s"]}

    cell = rnn.Recurrence(step, [W], {"h": 2, "s": 2}, n_in=2, input_map=lambda x: x * 1.0,
                          readout=lambda s: s["h"])
    with pytest.raises(tg.ConfigError, match=f"'{clash}'"):
        cell.loss(np.ones((5, 2)), np.zeros(5, dtype=int))


def test_a_state_part_named_like_the_machinerys_own_nodes_is_refused():
    with pytest.raises(tg.ConfigError, match="'y'"):
        rnn.Recurrence(lambda s: s, [], {"h": 2, "y": 2})


def test_a_step_that_forgets_a_state_part_names_it():
    W = tg.Parameter(np.eye(2), name="W")
    cell = rnn.Recurrence(lambda st, x: {"h": st["h"] @ W}, [W], {"h": 2, "c": 2}, n_in=2)
    with pytest.raises(tg.ConfigError, match="'c'"):
        cell.run(np.ones((3, 2)))


def test_an_input_map_runs_once_over_all_steps_in_loss_and_per_step_in_run():
    calls = []
    U = tg.Parameter(np.ones((2, 2)) * 0.1, name="U")

    def input_map(x):
        calls.append(x.shape)
        return x @ U.T

    cell = rnn.Recurrence(lambda h, u: (h + u).tanh(), [U], 2, n_in=2, input_map=input_map,
                          readout=lambda h: h)
    xs, ys = np.ones((4, 3, 2)), np.zeros((4, 3), dtype=int)
    cell.loss(xs, ys)
    assert calls == [(4, 3, 2)]
    calls.clear()
    cell.run(xs, ys)
    assert calls == [(3, 2)] * 4


# ------------------------------------------------------------------ every design, both forms

def _designs():
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 4, (5, 3))
    mask = _mask(5, 3)
    lstm, _ = user_lstm()
    xs, ys = _data(5, 3)
    return [
        ("elman", rnn.ElmanRNN(4, 3, 4), (ids, ids), {"mask": mask}),
        ("elman_floats", rnn.ElmanRNN(3, 4, 5), (xs, ys), {"h0": rng.normal(size=4)}),
        ("jordan", rnn.JordanRNN(4, 3, 4), (ids, ids), {}),
        ("seq2one", rnn.SequenceToOne(4, 3, 2), (ids, ids[0] % 2), {"mask": mask}),
        ("vec2seq", rnn.VectorToSequence(3, 4, 4), (rng.normal(size=(3, 3)), ids), {}),
        ("vec2seq_h0", rnn.VectorToSequence(3, 4, 4, h0_from_x=True), (rng.normal(size=3),
                                                                        ids[:, 0]), {}),
        ("conditional", rnn.ConditionalRNN(4, 3, 4), (ids, ids), {"mask": mask}),
        ("conditional_y0", rnn.ConditionalRNN(4, 3, 4), (ids, ids), {"y0": ids[0]}),
        ("user_lstm", lstm, (xs, ys), {"mask": mask}),
    ]


@pytest.mark.parametrize("name, model, args, kwargs", _designs(), ids=lambda v: v if
                         isinstance(v, str) else "")
def test_batched_loss_and_per_step_run_give_the_same_value_and_gradients(name, model, args,
                                                                         kwargs):
    params = model.parameters()
    batched = model.loss(*args, **kwargs)
    per_step = model.run(*args, **kwargs).loss
    assert batched.item() == pytest.approx(per_step.item(), rel=1e-12)
    for g, h in zip(tg.grad(batched, params), tg.grad(per_step, params)):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-14)


def test_teacher_forced_jordan_loss_has_no_sequential_loop():
    m = rnn.JordanRNN(4, 3, 4)
    ids = np.random.default_rng(0).integers(0, 4, (50, 2))
    loss = m.loss(ids, ids)
    scopes = set()
    stack, seen = [loss], set()
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            scopes.add(node.scope)
            stack.extend(node.parents)
    assert not any(s and re.search(r"t=[1-9]", s) for s in scopes), scopes
    assert len(seen) < 40      # a fixed number of nodes, whatever the length


def test_vector_to_sequence_gradient_reaches_a_tensor_x():
    m = rnn.VectorToSequence(3, 4, 4, h0_from_x=True)
    x = tg.tensor(np.random.default_rng(0).normal(size=(2, 3)), requires_grad=True)
    ys = np.array([[0, 1], [2, 3], [1, 1]])
    for loss in (m.loss(x, ys), m.run(x, ys).loss):
        (g,) = tg.grad(loss, [x])
        eps = 1e-6
        numeric = np.zeros_like(x.data)
        for idx in np.ndindex(x.shape):
            up, down = x.data.copy(), x.data.copy()
            up[idx] += eps
            down[idx] -= eps
            numeric[idx] = (m.loss(up, ys).item() - m.loss(down, ys).item()) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9)


def test_float_inputs_given_as_a_tensor_get_their_gradient():
    m = rnn.ElmanRNN(3, 4, 5)
    xs, ys = _data(4, 2)
    x = tg.tensor(xs, requires_grad=True)
    (g_batched,) = tg.grad(m.loss(x, ys), [x])
    (g_step,) = tg.grad(m.run(x, ys).loss, [x])
    np.testing.assert_allclose(g_batched, g_step, rtol=1e-12)
    assert np.abs(g_batched).sum() > 0


def test_elman_loss_takes_one_initial_state_for_the_whole_batch():
    m = rnn.ElmanRNN(4, 3, 4)
    ids = np.array([[0, 1], [2, 3], [1, 0]])
    h0 = np.array([0.5, -0.5, 0.1])
    loss = m.loss(ids, ids, h0=h0)
    assert loss.item() == pytest.approx(m.loss(ids, ids, h0=np.tile(h0, (2, 1))).item(), rel=1e-12)
    assert loss.item() == pytest.approx(m.run(ids, ids, h0=h0).loss.item(), rel=1e-12)


def test_sequence_to_one_label_error_names_the_batch_index():
    m = rnn.SequenceToOne(4, 3, 2)
    with pytest.raises(tg.BadIndexError, match=r"b=3") as info:
        m.loss(np.zeros((5, 4), dtype=int), np.array([0, 1, 0, 7]))
    assert "t=" not in str(info.value)


def test_an_unrolled_result_prints_readably():
    cell, _ = user_lstm()
    text = repr(cell.run(*_data(3, 2)))
    assert text.startswith("Unrolled(steps=3") and "'s'" in text and "loss=" in text


def test_one_model_unrolls_in_two_threads_at_once():
    import threading
    m = rnn.ElmanRNN(4, 3, 4)
    ids = np.random.default_rng(0).integers(0, 4, (200, 2))
    expected = m.loss(ids, ids).item()
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(m.loss(ids, ids).item())
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and results == [expected] * 10


def test_second_order_gradients_flow_through_a_cells_batched_loss():
    """d/dW of ||dL/dW||^2 by create_graph equals central differences of it."""
    m = rnn.ElmanRNN(3, 4, 3, seed=2)
    ids = np.array([[0, 1], [2, 0], [1, 2]])

    def penalty():
        (g,) = tg.grad(m.loss(ids, ids), [m.W], create_graph=True)
        return (g * g).sum()

    (hvp,) = tg.grad(penalty(), [m.W])
    eps, numeric = 1e-6, np.zeros_like(m.W.data)
    for idx in np.ndindex(m.W.shape):
        old = m.W.data[idx]
        m.W.data[idx] = old + eps
        up = penalty().item()
        m.W.data[idx] = old - eps
        down = penalty().item()
        m.W.data[idx] = old
        numeric[idx] = (up - down) / (2 * eps)
    np.testing.assert_allclose(hvp, numeric, rtol=1e-5, atol=1e-8)


def test_a_system_without_input_has_the_same_batched_and_per_step_loss():
    W = tg.Parameter(np.eye(2) * 0.5, name="W")
    V = tg.Parameter(np.ones((3, 2)), name="V")
    system = rnn.Recurrence(lambda s: (s @ W.T).tanh(), [W, V], 2, readout=lambda s: s @ V.T,
                            state_name="s")
    ys, s0 = np.array([0, 1, 2]), np.array([1.0, -0.5])
    batched, per_step = system.loss(steps=3, ys=ys, h0=s0), system.run(steps=3, ys=ys, h0=s0).loss
    assert batched.item() == pytest.approx(per_step.item(), rel=1e-12)
    for g, h in zip(tg.grad(batched, [W, V]), tg.grad(per_step, [W, V])):
        np.testing.assert_allclose(g, h, rtol=1e-12)


def _closing_cell(kind):
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.standard_normal((3, 3)) * 0.3, name="W")
    U = tg.Parameter(rng.standard_normal((3, 2)), name="U")
    if kind == "closure":
        step = lambda h, x: (h @ W.T + x @ U.T).tanh()            # noqa: E731
    elif kind == "default":
        step = lambda h, x, W=W, U=U: (h @ W.T + x @ U.T).tanh()  # noqa: E731
    else:
        def lin(h, x):
            return h @ W.T + x @ U.T

        def step(h, x):
            return lin(h, x).tanh()
    return rnn.Recurrence(step, [W, U], n_state=3, n_in=2, readout=lambda h: h)


@pytest.mark.parametrize("kind", ["closure", "default", "nested"])
def test_a_deep_copy_of_a_users_cell_computes_with_the_copys_parameters(kind):
    # was: deepcopy shared the step function, which still read the original's W and U: the
    # copy's loss ignored its own parameters and their gradients stayed None (the original's
    # were filled instead)
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal((4, 2)), np.array([0, 1, 2, 0])
    cell = _closing_cell(kind)
    before = cell.loss(xs, ys).item()
    twin = copy.deepcopy(cell)
    expected = _closing_cell(kind)
    for p, q in zip(twin.parameters(), expected.parameters()):
        p.data, q.data = p.data * 0.5, q.data * 0.5
    loss, reference = twin.loss(xs, ys), expected.loss(xs, ys)
    loss.backward()
    reference.backward()
    assert loss.item() == reference.item() and cell.loss(xs, ys).item() == before
    for p, q in zip(twin.parameters(), expected.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)
    assert all(p.grad is None for p in cell.parameters())


GLOBAL_W = tg.Parameter(np.eye(3), name="W")


def test_a_deep_copy_of_a_cell_reading_its_parameter_as_a_global_is_refused():
    cell = rnn.Recurrence(lambda h, x: (h @ GLOBAL_W.T + x).tanh(), [GLOBAL_W], n_state=3, n_in=3)
    with pytest.raises(tg.ConfigError, match="deepcopy: step reads 'GLOBAL_W'.*global"):
        copy.deepcopy(cell)


def test_pickling_a_cell_that_reads_its_parameter_as_a_global_is_refused():
    # was: pickled and unpickled without a word, the copy's W never used (its step read the
    # module's global W, the original): zeroing the copy's W left its outputs unchanged
    import pickle
    cell = rnn.Recurrence(_global_step, [GLOBAL_W], n_state=3, n_in=3)
    with pytest.raises(tg.ConfigError, match="pickle: step reads 'GLOBAL_W'.*global"):
        pickle.dumps(cell)
    assert copy.copy(cell).parameters()[0] is GLOBAL_W


def _global_step(h, x):
    return (h @ GLOBAL_W.T + x).tanh()


def test_a_cells_dtype_is_its_first_trained_parameters_wherever_that_is():
    """``Cell.dtype`` (what its inputs are cast to) is the dtype of the first parameter in
    ``named_parameters`` order: an attribute itself, or one inside a list or module that comes
    first; a fixed parameter before it does not count; float64 without any."""
    fixed = tg.Parameter(np.zeros(2), name="fixed", dtype=np.float16)
    fixed.requires_grad = False
    W = tg.Parameter(np.zeros((2, 2)), name="W", dtype=np.float32)
    U = tg.Parameter(np.zeros((2, 2)), name="U")

    def step(h, x):
        return h

    cell = rnn.Recurrence(step, [W, U], 2, n_in=2)
    assert cell.dtype == np.float32
    cell = rnn.Recurrence(step, [U, W], 2, n_in=2)
    assert cell.dtype == np.float64

    class Cell(rnn.Cell):
        parts = {"h": 2}

    c = Cell()
    assert c.dtype == np.float64
    c.fixed = fixed
    c.W = W
    assert c.dtype == np.float32       # the fixed one is passed over
    c = Cell()
    c.first = [W]
    c.U = U
    assert c.dtype == np.float32       # inside a list that comes first
    c = Cell()
    c.inner = tg.Module()
    c.inner.W = W
    c.U = U
    assert c.dtype == np.float32       # inside a module that comes first
    assert rnn.ElmanRNN(3, 2, 3, dtype=np.float32).dtype == np.float32


def _mixing_readout_cell(rows_alone, batch_readout=True):
    """An Elman-like cell whose readout centres the hidden states over the examples it is given
    (``rows_alone=False``: o depends on the other rows) or sums over them (a readout that
    keeps no row per example)."""
    rng = np.random.default_rng(0)
    W = tg.Parameter(rng.normal(size=(3, 3)) * 0.5, name="W")
    V = tg.Parameter(rng.normal(size=(2, 3)), name="V")
    readout = (lambda h: (h - h.mean(axis=0)) @ V.T) if rows_alone is False else \
        (lambda h: (h @ V.T).sum(axis=0))
    return rnn.Recurrence(lambda h, x: (h @ W.T + x).tanh(), [W, V], n_state=3, n_in=3,
                          readout=readout, name="mixing", batch_readout=batch_readout), [W, V]


def test_a_readout_that_keeps_no_row_per_example_is_refused_by_loss_naming_batch_readout():
    """loss applies the readout to the rows of all steps at once; one that sums them gave
    cross_entropy's "an input of shape (2,) needs targets of shape (), got (24,)", targets of a
    shape the user never made. The error now says what loss did and what to give."""
    cell, _ = _mixing_readout_cell(rows_alone=None)
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(6, 4, 3)), rng.integers(0, 2, (6, 4))
    with pytest.raises(tg.ShapeError, match=r"mixing: the readout gave o of shape \(2,\) from "
                       r"the rows of all 6 steps at once \(24 rows.*batch_readout=False"):
        cell.loss(xs, ys)


def test_batch_readout_false_gives_a_readout_that_mixes_rows_the_loss_of_run():
    """A readout that reads several rows at once (centring over the batch) computes another
    function on the rows of all steps; ``batch_readout=False`` applies it step by step, as run
    does: the same loss and gradients (and no replay, which would batch it)."""
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(6, 4, 3)), rng.integers(0, 2, (6, 4))
    cell, params = _mixing_readout_cell(rows_alone=False, batch_readout=False)
    loss, per_step = cell.loss(xs, ys), cell.run(xs, ys).loss
    assert loss.item() == per_step.item()
    for a, b in zip(tg.grad(loss, params), tg.grad(per_step, params)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    batched, _ = _mixing_readout_cell(rows_alone=False)
    assert abs(batched.loss(xs, ys).item() - per_step.item()) > 1e-3   # the oracle can fail
