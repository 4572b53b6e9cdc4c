"""The op-level DAG: every engine node, parameters at each use, one cluster per
scope, stable ids, summarised long unrolls and the gradient-flow colouring."""

import re

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz_svg import parse


def _elman_loss(seed=0, steps=3):
    model = rnn.ElmanRNN(5, 4, 5, seed=seed)
    ids = np.arange(steps) % 5
    return model.run(ids, (ids + 1) % 5).loss   # per step: o(t), L(t) in each step's cluster


def _all_nodes(root):
    """Every node behind ``root`` (an independent traversal for the oracle)."""
    seen, stack, out = set(), [root], []
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen.add(id(n))
            out.append(n)
            stack.extend(n.parents)
    return out


def _chain(steps, w=0.5):
    """h(t) = w * h(t-1) under scopes t=1..steps; returns (h(steps), w)."""
    w = tg.Parameter(np.array(w), name="w")
    with tg.scope("chain"):
        with tg.scope("t=0"):
            h = tg.tensor(1.0, requires_grad=True, name="h")
        for t in range(1, steps + 1):
            with tg.scope(f"t={t}"):
                h = (h * w).named("h")
    return h, w


def _weightlike(node):
    """A Parameter, or an unnamed transpose/reshape of one (drawn at each use like a parameter)."""
    while node.op in ("transpose", "reshape") and node.name is None:
        node = node.parents[0]
    return isinstance(node, tg.Parameter)


def test_every_engine_node_is_drawn_once_and_each_parameter_at_each_use():
    loss = _elman_loss()
    ops = [n for n in _all_nodes(loss) if not _weightlike(n)]
    uses = sum(_weightlike(p) for n in ops for p in n.parents)
    assert uses > len({id(p) for n in ops for p in n.parents if _weightlike(p)})
    drawn, edges, _ = parse(viz.render(viz.graph(loss)))
    assert len(drawn) == len(ops) + uses
    assert len(edges) == sum(len(n.parents) for n in ops)


def test_nodes_show_op_shape_and_name_and_parameters_are_marked():
    drawn, _, _ = parse(viz.render(viz.graph(_elman_loss())))
    texts = [n["text"] for n in drawn.values()]
    assert any(t == "tanh (4,) h" for t in texts)
    assert any(t == "cross_entropy () L" for t in texts)
    params = [n for n in drawn.values() if n["text"].split(" ")[0] in {"U", "W", "V", "b", "c"}]
    assert params and all(n["fill"] == "#dbe9f6" for n in params)


def test_one_cluster_per_scope():
    loss = _elman_loss(steps=3)
    scopes = {n.scope for n in _all_nodes(loss)
              if n.scope is not None and not isinstance(n, tg.Parameter)}
    _, _, clusters = parse(viz.render(viz.graph(loss)))
    assert {label.split(":")[0] for label in clusters.values()} == scopes
    assert len(clusters) == len(scopes)
    assert {"elman/t=1", "elman/t=2", "elman/t=3"} <= scopes


def test_two_runs_give_the_same_file():
    first = viz.graph(_elman_loss(seed=1))
    second = viz.graph(_elman_loss(seed=1))
    assert first.source == second.source
    assert viz.render(first) == viz.render(second)


def test_a_100000_step_unroll_is_summarised_by_its_first_and_last_steps():
    h, _ = _chain(100_000)
    drawn, edges, clusters = parse(viz.render(viz.graph(h, keep=3)))
    assert set(clusters.values()) == {f"chain/t={t}" for t in (0, 1, 2, 3, 99998, 99999, 100000)}
    gap = [nid for nid, n in drawn.items() if "99,994 time steps left out" in n["text"]]
    assert len(gap) == 1
    assert len(drawn) < 30
    assert sum(1 for _, b, _ in edges if b == gap[0]) == 1
    assert sum(1 for a, _, _ in edges if a == gap[0]) == 1


def _clusters_of(source):
    """node id -> title of its cluster, from the DOT source."""
    of = {}
    for body in re.findall(r"subgraph cluster_\d+ \{(.*?)\n\t\}", source, re.S):
        label = re.search(r"label=<([^>]*)>", body).group(1)
        of.update({nid: label for nid in re.findall(r"^\t\t(\w+) \[", body, re.M)})
    return of


@pytest.mark.parametrize("attention", [None, "dot"])
def test_an_encoder_decoder_long_unroll_is_summarised_chain_by_chain(attention):
    # The encoder and the decoder each have steps t=1..10.  The elision counted the steps
    # left out over both chains at once: one node "6 time steps left out (t=3 to t=8)" for
    # the 12 steps (6 of each chain) it stood for, wired to both; and the invisible edges
    # that keep steps in time order went from the encoder's step t to the decoder's t+1.
    model = rnn.EncoderDecoder(3, 3, 3, attention=attention)
    loss = model.run(np.arange(10) % 3, np.arange(10) % 3).loss
    source = viz.graph(loss, keep=2).source
    drawn, edges, clusters = parse(viz.render(viz.graph(loss, keep=2)))
    gaps = {n["text"]: nid for nid, n in drawn.items() if "left out" in n["text"]}
    chains = ("encdec/encoder", "encdec/decoder")
    assert sorted(gaps) == sorted(f"... 6 time steps of {c} left out (t=3 to t=8) ..."
                                  for c in chains)
    kept = {f"{c}/t={t}" for c in chains for t in (0, 1, 2, 9, 10)}
    assert kept <= set(clusters.values())
    assert not any(f"/t={t}" in label for label in clusters.values() for t in range(3, 9))
    cluster = _clusters_of(source)
    for chain in chains:
        gap = gaps[f"... 6 time steps of {chain} left out (t=3 to t=8) ..."]
        into = {cluster.get(a) for a, b, _ in edges if b == gap}
        out_of = {cluster.get(b) for a, b, _ in edges if a == gap}
        assert f"{chain}/t=2" in into and f"{chain}/t=9" in out_of
        other = next(c for c in chains if c != chain)
        assert not any(label.startswith(other) for label in into | out_of if label)
    invisible = re.findall(r"^\t(\w+) -> (\w+) \[style=invis", source, re.M)
    assert invisible
    for a, b in invisible:                    # each chain's steps in its own time order
        ca, cb = cluster[a].rsplit("/t=", 1), cluster[b].rsplit("/t=", 1)
        assert ca[0] == cb[0] and int(ca[1]) < int(cb[1]), (cluster[a], cluster[b])


def test_a_one_chain_unroll_names_no_chain_in_its_summary():
    h, _ = _chain(20)
    source = viz.graph(h, keep=3).source
    assert "... 14 time steps left out (t=4 to t=17) ..." in source
    assert source.count("left out") == 1


def test_gradient_norms_per_step_match_the_closed_form():
    h, _ = _chain(6, w=0.5)
    norms = viz.gradient_norms(h, "h")
    assert [t for t, _ in norms] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([g for _, g in norms], [0.5 ** (6 - t) for t in range(1, 7)])


def test_gradient_view_labels_and_colours_nodes_by_gradient_norm():
    h, _ = _chain(6, w=0.5)
    drawn, _, _ = parse(viz.render(viz.graph(h, grads=True)))
    by_norm = {}
    for n in drawn.values():
        if n["text"].startswith("mul") and "|grad|=" in n["text"]:
            by_norm[float(n["text"].split("|grad|=")[1])] = n["fill"]
    np.testing.assert_allclose(sorted(by_norm), [0.5 ** k for k in range(5, -1, -1)], rtol=1e-2)
    assert by_norm[max(by_norm)] != by_norm[min(by_norm)]


def test_gradient_view_after_backward_uses_the_stored_parameter_gradients():
    h, w = _chain(4, w=0.5)
    h.backward()
    drawn, _, _ = parse(viz.render(viz.graph(h, grads=True)))
    w_text = [n["text"] for n in drawn.values() if n["text"].startswith("w ")]
    assert len(w_text) == 4
    assert all(f"|grad|={float(np.linalg.norm(w.grad)):.2e}" in t for t in w_text)


def test_hostile_node_names_are_escaped():
    x = tg.tensor([1.0], requires_grad=True, name="<x>&\"'")
    with tg.scope("</title><b>"):
        y = (x * 2).named("{y}|<")
    drawn, _, clusters = parse(viz.render(viz.graph(y)))
    assert any("<x>&\"'" in n["text"] for n in drawn.values())
    assert any("{y}|<" in n["text"] for n in drawn.values())
    assert "</title><b>" in clusters.values()


def test_steps_run_left_to_right_in_time_order():
    model = rnn.LSTM(4, 3, 4)
    loss = model.loss(np.array([0, 1, 2, 3, 1]), np.array([1, 2, 3, 0, 1]))
    left, _ = _left_edges(loss)
    steps = [left[f"lstm/t={t}"] for t in range(1, 6)]
    assert steps == sorted(steps)


def _left_edges(loss):
    """(cluster label -> the x of its leftmost node that reads the recurrence, cluster label ->
    its node ids) of the LSTM op graph of ``loss``.  A step's slice u(t) of the input projection
    computed before the steps reads nothing of the steps, so Graphviz may place it anywhere left
    of its use: a step's extent is that of its nodes that read the recurrence."""
    drawn, _, _ = parse(viz.render(viz.graph(loss)))
    source = viz.graph(loss).source
    members = {}
    for block in re.findall(r"subgraph (cluster_\d+) \{(.*?)\n\t\}", source, re.S):
        label = re.search(r"label=<([^>]*)>", block[1]).group(1)
        members[label] = re.findall(r"^\t\t(n\d+) \[", block[1], re.M)
    parents = {}
    for a, b in re.findall(r"^\t(\w+) -> (\w+)", source, re.M):
        parents.setdefault(b, set()).add(a)
    before = set(members["lstm: computed once before the steps, shared by all of them"])
    left = {label: min(drawn[n]["x"] for n in ids if not parents.get(n, set()) <= before)
            for label, ids in members.items() if label.startswith("lstm/t=") and label != "lstm/t=0"}
    return left, members


def test_precomputation_shared_by_all_steps_is_one_cluster_named_for_what_it_is():
    model = rnn.LSTM(4, 3, 4)
    loss = model.loss(np.array([0, 1, 2, 3, 1]), np.array([1, 2, 3, 0, 1]))
    _, _, clusters = parse(viz.render(viz.graph(loss)))
    labels = set(clusters.values())
    assert "lstm: computed once before the steps, shared by all of them" in labels
    assert "lstm: after the steps" in labels
    assert not any("(t" in label for label in labels)


def test_replayed_steps_are_one_cluster_after_the_engine_step():
    model = rnn.LSTM(4, 3, 4)
    xs = np.array([0, 1, 2, 3, 1, 2, 0, 3, 1])
    loss = model.loss(xs, (xs + 1) % 4)
    left, members = _left_edges(loss)
    source = viz.graph(loss).source
    title = ("lstm/t=2..9: steps 2 to 9 as one node, run from the tape of a recorded step "
             "(rnn.replay)")
    assert title in members
    assert "replay" in re.findall(r"<b>(\w+)</b>", source)
    assert not any(f"lstm/t={t}" in members for t in range(2, 10))    # recorded: not in the graph
    assert left["lstm/t=1"] < left[title]


def test_gradient_norms_leave_out_states_that_need_no_gradient_instead_of_zeros():
    # an echo state network's h(t) needs no gradient (fixed reservoir), yet L depends on it
    # through the trained readout: gradient_norms gave 0.0 at every step (and `tinygraph train
    # --task signal` drew that as its gradient flow)
    model = rnn.EchoStateNetwork(2, 3, 1, seed=0)
    rng = np.random.default_rng(0)
    run = model.run(rng.normal(size=(4, 2)), rng.normal(size=(4, 1)))
    assert not any(h.requires_grad for h in run.parts["h"])
    assert viz.gradient_norms(run.loss) == []
    h0 = tg.tensor(np.zeros(3), requires_grad=True)
    run = model.run(rng.normal(size=(4, 2)), rng.normal(size=(4, 1)), h0=h0)
    expected = tg.grad(run.loss, run.parts["h"], retain_graph=True)
    np.testing.assert_allclose([g for _, g in viz.gradient_norms(run.loss)],
                               [np.linalg.norm(g) for g in expected], rtol=1e-12)
    assert all(g > 0 for _, g in viz.gradient_norms(run.loss))


def test_gradient_norms_refuse_a_name_no_variable_has_but_keep_empty_lists_of_real_names():
    # a misspelt name gave [] as if no gradient flowed; an echo state network's h (no gradient),
    # a recursive net's h (no time steps) and a graph with no named variables still give []
    model = rnn.ElmanRNN(3, 4, 3, seed=0)
    loss = model.run(np.array([0, 1, 2]), np.array([1, 2, 0])).loss
    assert [t for t, _ in viz.gradient_norms(loss, "h")] == [1, 2, 3]
    with pytest.raises(tg.ConfigError, match=r"gradient_norms: no variable named 'hh'.*'h'"):
        viz.gradient_norms(loss, name="hh")
    esn = rnn.EchoStateNetwork(2, 3, 1, seed=0)
    assert viz.gradient_norms(esn.run(np.ones((2, 2)), np.ones((2, 1))).loss, "h") == []
    tree = rnn.RecursiveNet(6, 8, 4, seed=0)
    assert viz.gradient_norms(tree.run((0, (1, 2)), 3).loss) == []
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    assert viz.gradient_norms((x * x).sum(), name="anything") == []


def test_gradient_norms_refuse_two_states_of_one_step_from_a_state_carried_without_detach():
    # a run started from an earlier run's h(T), not detached: both runs' h(1)..h(4) are behind
    # the loss, and the list gave two entries for every t, interleaved, with nothing to say
    # which run each belonged to
    model = rnn.ElmanRNN(5, 8, 5, seed=0)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 5, size=4), rng.integers(0, 5, size=4)
    earlier = model.run(xs, ys)
    later = model.run(xs, ys, h0=earlier.states[-1])
    with pytest.raises(tg.ConfigError, match=r"gradient_norms: two variables h\(1\).*detach"):
        viz.gradient_norms(later.loss)
    detached = model.run(xs, ys, h0=earlier.states[-1].detach())
    expected = tg.grad(detached.loss, detached.parts["h"], retain_graph=True)
    assert [t for t, _ in viz.gradient_norms(detached.loss)] == [1, 2, 3, 4]
    np.testing.assert_allclose([n for _, n in viz.gradient_norms(detached.loss)],
                               [np.linalg.norm(g) for g in expected], rtol=1e-12)
