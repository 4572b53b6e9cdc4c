"""A step that reads tensors made outside its cell (another model's states, a memory the user
computed before the run): it runs, trains, draws and explores, and the gradient reaches the
model that made them.  The outside tensor is drawn once, outside the time steps, with an edge
into every step that reads it."""

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz.derive import derive

H, N_IN, N_OUT = 4, 3, 3
XS = np.array([0, 1, 2, 1])
XD = np.random.default_rng(5).normal(size=(3, H))
YD = np.array([0, 2, 1])


def _attending_decoder(encoder, xs=XS, seed=1):
    """A user's decoder whose step attends over the encoder's states h(1..n_x) (named "h", as
    the decoder's own state part): e = s Ua H^T, alpha = softmax(e), ctx = alpha H."""
    rng = np.random.default_rng(seed)
    Ua = tg.Parameter(rng.normal(0, 0.5, (H, H)), name="Ua")
    Wd = tg.Parameter(rng.normal(0, 0.5, (H, H)), name="Wd")
    R = tg.Parameter(rng.normal(0, 0.5, (H, H)), name="R")
    V = tg.Parameter(rng.normal(0, 0.5, (N_OUT, H)), name="V")
    memory = tg.stack(encoder.run(xs).states)            # (n_x, H), made outside the decoder

    def step(s, x):
        e = (s @ Ua) @ memory.T
        alpha = tg.softmax(e, axis=-1).named("alpha")
        ctx = (alpha @ memory).named("ctx")
        return (s @ Wd.T + ctx @ R.T + x).tanh()
    return rnn.Recurrence(step, [Ua, Wd, R, V], n_state=H, n_in=H,
                          readout=lambda s: s @ V.T, name="dec")


def test_a_step_reading_another_models_states_runs_with_the_same_loss_as_loss():
    encoder = rnn.ElmanRNN(N_IN, H, N_OUT, seed=0)
    decoder = _attending_decoder(encoder)
    assert decoder.run(XD, YD).loss.item() == pytest.approx(decoder.loss(XD, YD).item(), rel=1e-13)


def test_the_gradient_of_run_reaches_the_encoder_and_matches_finite_differences():
    encoder = rnn.ElmanRNN(N_IN, H, N_OUT, seed=0)

    def loss_of(U, W):
        saved = encoder.U, encoder.W
        encoder.U, encoder.W = U, W
        try:
            return _attending_decoder(encoder).run(XD, YD).loss
        finally:
            encoder.U, encoder.W = saved
    assert tg.gradcheck(loss_of, [encoder.U, encoder.W], rtol=1e-6)


def test_a_name_clashing_inside_the_step_is_still_refused_when_the_step_also_reads_outside():
    encoder = rnn.ElmanRNN(N_IN, H, N_OUT, seed=0)
    memory = tg.stack(encoder.run(XS).states)

    def step(s, x):
        return ((s + (tg.softmax(s @ memory.T, axis=-1) @ memory).named("o")) + x).tanh()
    cell = rnn.Recurrence(step, [encoder.U], n_state=H, n_in=H, name="dec")
    with pytest.raises(tg.ConfigError, match="intermediate variable 'o'"):
        cell.run(XD)


def _keys_reading(variables, src):
    return sorted(dst for (s, dst) in variables.edges if s == src)


def test_the_outside_tensor_is_one_static_variable_with_an_edge_into_every_reading_step():
    decoder = _attending_decoder(rnn.ElmanRNN(N_IN, H, N_OUT, seed=0))
    variables = derive(decoder.trace(3))
    outside = [k for k in variables.keys if k[0] == "elman.h"]
    assert outside == [("elman.h", None)]
    assert _keys_reading(variables, ("elman.h", None)) == sorted(
        [("alpha", t) for t in (1, 2, 3)] + [("ctx", t) for t in (1, 2, 3)])
    assert variables.edges[(("elman.h", None), ("alpha", 2))] == ()
    assert variables.edges[(("h", 1), ("alpha", 2))] == ("Ua",)       # e = s(t-1) Ua H^T


def test_the_decoders_own_h_is_not_mixed_with_the_encoders_h():
    decoder = _attending_decoder(rnn.ElmanRNN(N_IN, H, N_OUT, seed=0))
    variables = derive(decoder.trace(3))
    assert sorted(t for name, t in variables.keys if name == "h") == [0, 1, 2, 3]   # h(0) too
    assert variables.edges[(("h", 1), ("h", 2))] == ("Wd",)      # no encoder weight W or U
    assert (("x", 2), ("h", 2)) in variables.edges and variables.edges[(("x", 2), ("h", 2))] == ()


def test_the_unrolled_view_draws_the_outside_node_once_outside_the_step_groups():
    decoder = _attending_decoder(rnn.ElmanRNN(N_IN, H, N_OUT, seed=0))
    source = viz.unrolled(decoder, steps=3).source
    lines = [line for line in source.splitlines() if "label=<elman.h>" in line]
    assert len(lines) == 1 and "group=" not in lines[0]
    node = lines[0].split()[0]
    forks = [line.split()[2] for line in source.splitlines()           # one edge into each step,
             if line.strip().startswith(f"{node} -> ") and "style=invis" not in line]  # at a fork
    assert len(forks) == 3
    assert sum(line.strip().startswith(f"{fork} -> ") for fork in forks
               for line in source.splitlines()) == 6                   # into alpha(t) and ctx(t)


def test_the_folded_view_draws_the_outside_node_without_a_delay():
    decoder = _attending_decoder(rnn.ElmanRNN(N_IN, H, N_OUT, seed=0))
    source = viz.folded(decoder).source
    node = next(line.split()[0] for line in source.splitlines() if "label=<elman.h>" in line)
    assert not any(f"{node} -> fd_" in line for line in source.splitlines())
    assert sum(line.strip().startswith("fd_") and "[label=\"\"" in line
               for line in source.splitlines()) == 1            # one delay: the decoder's h


def test_a_named_outside_memory_is_drawn_under_its_own_name():
    encoder = rnn.ElmanRNN(N_IN, H, N_OUT, seed=0)
    memory = tg.stack(encoder.run(XS).states).named("M")
    Wd = tg.Parameter(np.eye(H) * 0.5, name="Wd")

    def step(s, x):
        return (s @ Wd.T + tg.softmax(s @ memory.T, axis=-1) @ memory + x).tanh()
    cell = rnn.Recurrence(step, [Wd], n_state=H, n_in=H, name="dec")
    variables = derive(cell.trace(3))
    assert ("M", None) in variables.keys
    assert not any(name == "elman.h" for name, _ in variables.keys)
    assert _keys_reading(variables, ("M", None)) == [("h", 1), ("h", 2), ("h", 3)]


def test_diagnostics_and_the_explorer_count_only_the_decoders_steps():
    decoder = _attending_decoder(rnn.ElmanRNN(N_IN, H, N_OUT, seed=0))
    assert rnn.saturation(decoder, XD, YD).shape == (3,)
    explorer = viz.explore(decoder, XD, YD)
    assert explorer.data["steps"] == 3
    assert any(name.startswith("h@") for name in explorer.data["names"])   # the encoder's
