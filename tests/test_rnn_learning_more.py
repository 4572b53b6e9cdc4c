"""The designs of sections 10.5-10.12 learn what they are for, on the small problems of
rnn.problems (seconds each, fixed seeds)."""

import numpy as np

import rnn
import tinygraph as tg
from rnn import problems


def test_recursive_net_trained_on_small_random_trees_classifies_the_parity_of_bigger_balanced_trees():
    model = rnn.RecursiveNet(2, 16, 2, seed=0)
    problems.train(model, lambda k: problems.parity_trees(32, max_leaves=8, seed=k), 1500,
                   lr=2e-2)
    for leaves in (8, 16, 32):
        tree, y = problems.parity_trees(500, leaves=leaves, balanced=True, seed=10**6 + leaves)
        assert np.mean(model.predict(tree) == y) >= 0.95     # chance: 0.5


def test_leaky_units_and_skip_connections_recall_further_than_elman_on_the_same_budget():
    delay, updates = 30, 500
    models = {"elman": rnn.ElmanRNN(6, 16, 6, seed=0),
              "leaky": rnn.LeakyRNN(6, 16, 6, alpha="learned", seed=0),
              "skip": rnn.LeakyRNN(6, 12, 6, alpha=0.5, skip=10, seed=0)}
    budget = sum(p.size for p in models["elman"].parameters())
    xs, ys = problems.delayed_recall(500, delay, seed=10**6)
    recall = {}
    for name, model in models.items():
        assert sum(p.size for p in model.parameters()) <= 1.05 * budget
        problems.train(model, lambda k: problems.delayed_recall(32, delay, seed=k), updates,
                       lr=3e-2)
        recall[name] = problems.last_step_accuracy(model, xs, ys)
    assert recall["elman"] < 0.7                              # chance: 0.25
    assert recall["leaky"] >= 0.9 and recall["skip"] >= 0.9


def test_echo_state_network_fits_a_signal_by_training_only_its_readout():
    model = rnn.EchoStateNetwork(1, 100, 1, spectral_radius=0.9, seed=0)
    fixed = {name: p.data.copy() for name, p in [("U", model.U), ("W", model.W), ("b", model.b)]}
    assert [name for name, _ in model.named_parameters()] == ["V", "c"]
    xs, ys = problems.delayed_product(2000, seed=0)
    model.fit(xs, ys, ridge=1e-6, washout=100)
    test_x, test_y = problems.delayed_product(1000, seed=1)
    with tg.no_grad():
        predicted = np.stack([o.data for o in model.run(test_x).outputs])
    assert problems.normalised_error(predicted[100:], test_y[100:]) < 1e-3
    inputs_only = np.linalg.lstsq(np.hstack([test_x, np.ones_like(test_x)]), test_y, rcond=None)[0]
    baseline = np.hstack([test_x, np.ones_like(test_x)]) @ inputs_only
    assert problems.normalised_error(baseline, test_y) > 0.5  # no reservoir: no memory
    for name, value in fixed.items():
        np.testing.assert_array_equal(getattr(model, name).data, value)


def test_echo_state_least_squares_readout_is_where_the_gradient_of_the_loss_vanishes():
    model = rnn.EchoStateNetwork(2, 20, 2, spectral_radius=1.2, seed=3)
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(50, 3, 2)), rng.normal(size=(50, 3, 2))
    model.fit(xs, ys, ridge=0.0)
    loss = model.loss(xs, ys)
    loss.backward()
    scale = np.abs(model.V.data).max() * loss.item()
    assert np.abs(model.V.grad).max() < 1e-8 * scale and np.abs(model.c.grad).max() < 1e-8 * scale
    assert model.U.grad is None and model.W.grad is None


def test_memory_network_solves_associative_recall():
    model = rnn.MemoryNetwork(9, 16, 5, slots=3, width=8, seed=0)
    problems.train(model, lambda k: problems.associative_recall(32, seed=k), 600, lr=2e-2)
    xs, ys = problems.associative_recall(500, seed=10**6)
    assert problems.last_step_accuracy(model, xs, ys) >= 0.85    # chance: 0.25
