"""DeepRNN, LeakyRNN, EchoStateNetwork, MemoryNetwork and RecursiveNet work the way the first
designs do: the contract's parameters, every view, truncated BPTT and streaming with the whole
state carried, save/load, and clear errors for bad input."""

import tracemalloc

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz_svg import parse

T = 7


def _ids(batch=2, n=4, steps=T, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, (steps, batch)), rng.integers(0, 3, (steps, batch))


SEQUENCE_MODELS = {
    "deep-stacked": lambda: rnn.DeepRNN(4, 5, 3, layers=3, kind="stacked", seed=1),
    "deep-mlp": lambda: rnn.DeepRNN(4, 5, 3, kind="mlp", seed=1),
    "deep-skip": lambda: rnn.DeepRNN(4, 5, 3, kind="skip", seed=1),
    "leaky": lambda: rnn.LeakyRNN(4, 5, 3, alpha=0.8, seed=1),
    "leaky-skip": lambda: rnn.LeakyRNN(4, 5, 3, alpha="learned", skip=3, seed=1),
    "memory": lambda: rnn.MemoryNetwork(4, 5, 3, slots=3, width=4, seed=1),
}


def _data(name):
    """(model, xs, ys) with targets of the model's kind."""
    if name == "esn":
        rng = np.random.default_rng(0)
        return (rnn.EchoStateNetwork(2, 6, 2, spectral_radius=0.9, seed=1),
                rng.normal(size=(T, 2, 2)), rng.normal(size=(T, 2, 2)))
    return (SEQUENCE_MODELS[name](),) + _ids()


ALL = list(SEQUENCE_MODELS) + ["esn"]


def test_the_new_designs_have_the_spec_parameters():
    assert {n: p.shape for n, p in rnn.LeakyRNN(5, 4, 3, skip=2).named_parameters()} == {
        "U": (4, 5), "W": (4, 4), "V": (3, 4), "b": (4,), "c": (3,), "Wd": (4, 4)}
    esn = rnn.EchoStateNetwork(5, 4, 3, spectral_radius=1.2)
    assert [n for n, _ in esn.named_parameters()] == ["V", "c"]
    assert not esn.U.requires_grad and not esn.W.requires_grad
    assert esn.U.shape == (4, 5) and esn.W.shape == (4, 4)
    assert np.max(np.abs(np.linalg.eigvals(esn.W.data))) == pytest.approx(1.2, rel=1e-12)
    recursive = rnn.RecursiveNet(5, 4, 3)
    assert {n: p.shape for n, p in recursive.named_parameters()} == {
        "V": (4, 5), "U": (4, 4), "W": (4, 4), "b": (4,), "Vo": (3, 4), "c": (3,)}
    memory = rnn.MemoryNetwork(5, 4, 3, slots=6, width=2)
    assert memory.parts == {"h": 4, "M": 12, "r": 2} and memory.V.shape == (3, 6)
    assert set(rnn.DeepRNN(5, 4, 3, kind="stacked").parts) == {"h1", "h2"}


def test_a_learned_leak_stays_in_the_unit_interval_and_alpha_one_half_halves_an_impulse():
    model = rnn.LeakyRNN(1, 1, 2, alpha=0.5, seed=0)
    model.U.data[:] = 0.0
    model.W.data[:] = 0.0
    _, states, _ = model(np.zeros((4, 1)), h0=np.array([1.0]))
    assert [s.item() for s in states] == [0.5, 0.25, 0.125, 0.0625]      # alpha^k
    learned = rnn.LeakyRNN(3, 8, 2, alpha="learned")
    assert np.all((learned.alpha > 0) & (learned.alpha < 1))


@pytest.mark.parametrize("name", ALL)
def test_every_view_draws_every_new_design(name):
    model, xs, ys = _data(name)
    folded = parse(viz.render(viz.folded(model)))[0]
    squares = sum(n["fill"] == "black" for n in folded.values())
    assert squares >= len(model.parts)
    if name == "leaky-skip":
        assert squares == 3                      # h -> the d = 3 delays of its skip connection
    unrolled = parse(viz.render(viz.unrolled(model, steps=4)))[0]
    assert any(n["text"].endswith("(4)") for n in unrolled.values())
    _, _, clusters = parse(viz.render(viz.graph(model.run(xs[:3], ys[:3]).loss)))
    assert {f"{model.name}/t={t}" for t in (1, 2, 3)} <= set(clusters.values())
    coloured = parse(viz.render(viz.unrolled(model, steps=4, grads=True)))[0]
    assert any(n["fill"] not in (None, "none", "white") for n in coloured.values())


def test_the_tree_view_and_the_op_graph_of_a_recursive_net():
    model = rnn.RecursiveNet(3, 4, 2, seed=0)
    nodes, edges, _ = parse(viz.render(viz.unrolled(model, steps=5, grads=True)))
    assert sum(n["text"].startswith("x") for n in nodes.values()) == 5
    assert any(n["fill"] not in (None, "none", "white") for n in nodes.values())
    _, _, clusters = parse(viz.render(viz.graph(model.loss((0, (1, 2)), 1))))
    assert {f"recursive/node={k}" for k in range(1, 6)} <= set(clusters.values())
    folded = parse(viz.render(viz.folded(model)))
    assert not any(n["fill"] == "black" for n in folded[0].values())   # a tree has no delays


@pytest.mark.parametrize("name", ALL)
def test_a_long_unroll_of_every_new_design_is_drawn_summarised(name):
    model, _, _ = _data(name)
    g = viz.unrolled(model, steps=2000)
    assert "1,994 steps left out" in g.source


def test_a_100000_step_skip_unroll_builds_and_back_propagates():
    model = rnn.LeakyRNN(3, 4, 3, alpha=0.9, skip=5, seed=0)
    xs = np.arange(100_000) % 3
    loss = model.loss(xs, xs)
    loss.backward()
    assert np.isfinite(model.Wd.grad).all()


@pytest.mark.parametrize("name", ALL)
def test_streaming_in_chunks_carries_the_whole_state_and_equals_one_unroll(name):
    model, xs, ys = _data(name)
    whole = model.loss(xs, ys).item() / len(xs)
    assert rnn.stream_loss(model, xs, ys, chunk=2) == pytest.approx(whole, rel=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_truncated_bptt_trains_every_causal_new_design(name):
    model, xs, ys = _data(name)
    trainer = rnn.Trainer(model, lr=1e-2)
    before = model.loss(xs, ys).item()
    for _ in range(15):
        losses, _ = rnn.truncated_bptt(trainer, xs, ys, chunk=3)
    assert len(losses) == 3 and model.loss(xs, ys).item() < before


@pytest.mark.parametrize("name", ALL + ["recursive"])
def test_save_and_load_restore_every_new_design(name, tmp_path):
    if name == "recursive":
        model, args = rnn.RecursiveNet(3, 4, 2, seed=1), (((0, 1), 2), 1)
        other = rnn.RecursiveNet(3, 4, 2, seed=2)
    else:
        model, xs, ys = _data(name)
        args = (xs, ys)
        other = _data(name)[0]
        for p in other.parameters():
            p.data = p.data + 1.0
    if name == "esn":
        other = rnn.EchoStateNetwork(2, 6, 2, spectral_radius=0.9, seed=5)   # another reservoir
    path = str(tmp_path / "m.npz")
    model.save(path)
    other.load(path)
    assert other.loss(*args).item() == model.loss(*args).item()


def test_recursive_net_runs_leaves_that_are_vectors_and_batches():
    model = rnn.RecursiveNet(3, 4, 2, seed=0)
    rng = np.random.default_rng(0)
    batch = ((rng.normal(size=(5, 3)), np.array([0, 1, 2, 0, 1])), rng.normal(size=(5, 3)))
    outputs, states, root = model(batch)
    assert outputs[0].shape == (5, 2) and len(states) == 5 and root is states[-1]
    assert model.predict(batch).shape == (5,)
    assert all(h.scope == f"recursive/node={k}" for k, h in enumerate(states, start=1))


@pytest.mark.parametrize("make, error, words", [
    (lambda: rnn.EchoStateNetwork(2, 3, 1, spectral_radius=0), tg.ConfigError, "spectral_radius"),
    (lambda: rnn.EchoStateNetwork(2, 3, 1, spectral_radius=-1.0), tg.ConfigError, "> 0"),
    (lambda: rnn.EchoStateNetwork(2, 3, 1, spectral_radius=float("nan")), tg.ConfigError,
     "finite"),
    (lambda: rnn.LeakyRNN(2, 3, 1, alpha=1.0), tg.ConfigError, "between 0 and 1"),
    (lambda: rnn.LeakyRNN(2, 3, 1, alpha=0), tg.ConfigError, "between 0 and 1"),
    (lambda: rnn.LeakyRNN(2, 3, 1, alpha="fixed"), tg.ConfigError, "'learned'"),
    (lambda: rnn.LeakyRNN(2, 3, 1, skip=0), tg.ConfigError, "skip"),
    (lambda: rnn.DeepRNN(2, 3, 1, kind="wide"), tg.ConfigError, "'stacked', 'mlp', 'skip'"),
    (lambda: rnn.DeepRNN(2, 3, 1, layers=1), tg.ConfigError, "at least 2"),
    (lambda: rnn.MemoryNetwork(2, 3, 1, slots=0), tg.ConfigError, "slots"),
    (lambda: rnn.EchoStateNetwork(2, 3, 1, criterion="cross_entropy"), tg.ConfigError,
     "criterion must be 'squared_error'"),
    (lambda: rnn.EchoStateNetwork(2, 3, 1, criterion="mse"), tg.ConfigError,
     "criterion must be 'squared_error'"),
])
def test_bad_configurations_are_refused_with_a_clear_error(make, error, words):
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize("call, error, words", [
    (lambda m: m.loss((0, (1, 7)), 0), tg.BadIndexError, r"leaf at root\.1\.1: id 7"),
    (lambda m: m.loss((0, (1, 2, 3)), 0), tg.ShapeError, "tuple of length 3"),
    (lambda m: m.loss(([0, 1], 2), [0, 1]), tg.ShapeError, "same batch"),
    (lambda m: m.loss((0, "a"), 0), tg.DTypeError, "dtype"),
    (lambda m: m.loss((np.array([0, 1]), np.array([0, 1, 2])), np.array([0, 1])), tg.ShapeError,
     "same batch"),
    (lambda m: m.loss((0, 1), 5), tg.BadIndexError, "out of range"),
    (lambda m: m.loss((0, np.ones(2)), 0), tg.ShapeError, r"\(4,\)"),
    # a pair written as a list was read as a ragged leaf: "pad them ... rnn.pad_sequences"
    (lambda m: m.loss([0, [1, 2]], 0), tg.ShapeError, r"a pair of trees is a tuple \(left, right\)"),
])
def test_a_bad_tree_is_refused_with_a_clear_error(call, error, words):
    with pytest.raises(error, match=words):
        call(rnn.RecursiveNet(4, 3, 2))


def test_the_echo_state_network_takes_criterion_squared_error_as_every_design_does():
    xs = np.random.default_rng(0).normal(size=(6, 2))
    ys = np.random.default_rng(1).normal(size=(6, 1))
    named = rnn.EchoStateNetwork(2, 5, 1, seed=0, criterion="squared_error")
    default = rnn.EchoStateNetwork(2, 5, 1, seed=0)
    assert named.config() == default.config()
    assert named.loss(xs, ys).item() == default.loss(xs, ys).item()


@pytest.mark.parametrize("name, call, error, words", [
    ("esn", lambda m, xs, ys: m.loss(xs, np.zeros((T, 2), dtype=np.int64)), tg.DTypeError,
     "float target"),
    ("esn", lambda m, xs, ys: m.loss(xs, ys[:3]), tg.ShapeError, "3"),
    ("leaky-skip", lambda m, xs, ys: m.loss(xs, ys, past=[{"h": np.zeros((2, 5))}]),
     tg.ShapeError, "list of 3 states"),
    ("leaky", lambda m, xs, ys: m.loss(xs, ys, past=[]), tg.ConfigError, "skip"),
    # a bad past state was named h0 ('h0 must have shape (5,) or (2, 5), got (4,)', 'h0 has
    # no state part'), an argument the call did not give
    ("leaky-skip", lambda m, xs, ys: m.loss(xs, ys, past=[np.zeros(5), np.zeros(4), np.zeros(5)]),
     tg.ShapeError, r"leaky: past\[1\] must have shape \(5,\) or \(2, 5\), got \(4,\)"),
    ("leaky-skip", lambda m, xs, ys: m.loss(xs, ys, past=[{"h": np.zeros(5)}, {"s": 0}, {}]),
     tg.ConfigError, r"leaky: past\[1\] has no state part 's'"),
    ("memory", lambda m, xs, ys: m.loss(xs, ys, h0=np.zeros((2, 5))), tg.ShapeError, "dict"),
    ("deep-stacked", lambda m, xs, ys: m.loss(xs + 9, ys), tg.BadIndexError, "out of range"),
    ("memory", lambda m, xs, ys: m.loss(xs, ys, mask=np.ones((T, 3))), tg.ShapeError, "mask"),
])
def test_bad_input_to_the_new_designs_is_refused_before_anything_changes(name, call, error,
                                                                          words):
    model, xs, ys = _data(name)
    before = model.state_dict()
    with pytest.raises(error, match=words):
        call(model, xs, ys)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def _chain_tree(depth):
    """A tree of ``depth`` pairs, each the pair below and a leaf: a chain of merges."""
    tree = 0
    for k in range(depth):
        tree = (tree, k % 4)
    return tree


def _run_peak(model, tree):
    """The peak of the memory traced while ``model`` runs ``tree``, above what was held before."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        with tg.no_grad():
            model.run(tree, 1)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()


def test_a_chain_shaped_tree_runs_in_memory_linear_in_its_depth():
    # every node kept its path from the root ("root.0.0...0.1") as text, of length O(depth):
    # O(depth^2) in all: the peak grew 8.5x for a 4x deeper tree (3.8x now; 580 MB at depth
    # 16,000, 93 MB now)
    model = rnn.RecursiveNet(4, 3, 2, seed=0)
    shallow = _run_peak(model, _chain_tree(500))
    deep = _run_peak(model, _chain_tree(2000))
    assert deep < 6 * shallow


def test_a_bad_leaf_deep_in_a_tree_is_named_by_its_path():
    model = rnn.RecursiveNet(4, 3, 2, seed=0)
    with pytest.raises(tg.BadIndexError, match=r"leaf at root(\.0){5}\.1: id 9"):
        model.loss(((((((0, 9), 1), 2), 3), 0), 1), 1)


def test_a_skip_models_past_alone_gives_the_state_before_step_1():
    # past[-1] is h(0), but without h0 step 1 read zeros as h(t-1) while step 3 read past[-1]
    # as h(t-3): a sequence continued from carry's past alone gave 10.97 nats, not 10.63
    model = rnn.LeakyRNN(4, 5, 3, alpha=0.7, skip=3, seed=2)
    xs, ys = _ids(steps=10)
    first = model.run_for_loss(xs[:4], ys[:4])
    rest = model.loss(xs[4:], ys[4:], past=model.carry(first)["past"])
    assert rest.item() + first.loss.item() == pytest.approx(model.loss(xs, ys).item(), rel=1e-12)


def test_a_skip_models_h0_that_differs_from_past_is_refused():
    model = rnn.LeakyRNN(4, 5, 3, alpha=0.7, skip=3, seed=2)
    xs, ys = _ids()
    carried = model.carry(model.run_for_loss(xs, ys))
    with pytest.raises(tg.ConfigError, match=r"leaky: h0 and past\[-1\] are both the state h\(0\)"):
        model.loss(xs, ys, h0=np.zeros((2, 5)), past=carried["past"])
    assert model.loss(xs, ys, **carried).item() > 0       # carry's h0 and past agree


def test_a_recursive_nets_vector_leaves_that_require_grad_get_their_gradient():
    # a leaf given as a Tensor that requires grad (an embedding of another model) was read as
    # values: after backward its .grad stayed None, without a word
    model = rnn.RecursiveNet(3, 4, 2, seed=1)
    rng = np.random.default_rng(13)
    a = tg.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    b = tg.tensor(rng.normal(size=(2, 3)), requires_grad=True)
    y = np.array([1, 0])
    model.loss(((a, b), (np.array([0, 2]), a)), y).backward()      # a is read twice
    assert a.grad is not None and b.grad is not None
    assert tg.gradcheck(lambda a, b: model.loss(((a, b), (np.array([0, 2]), a)), y), [a, b])
