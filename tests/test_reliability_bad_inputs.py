"""The whole bad-input catalogue of issues 7 and 15, across tinygraph, rnn and viz, in one table.

Every row is one bad input given to a trained setup: every recurrent design
(and a user's own ``rnn.Recurrence``) with an Adam optimizer that has taken a
step, so parameters, gradients and optimizer state are all non-trivial.  Each
bad input must raise the named tinygraph error, which also subclasses the
built-in a user would catch, with the named details in its message, and must
leave every model's parameters and gradients and every optimizer's state
exactly as they were.
"""

import warnings
import zipfile

import numpy as np
import pytest

import rnn
import tinygraph as tg
import viz
from viz import page, plots

N_IN, N_HIDDEN, N_OUT = 5, 4, 3
XS = [0, 1, 2]          # a good sequence of input ids (T = 3)
YS = [0, 1, 2]          # good targets
FLOATS = np.linspace(-1, 1, 15).reshape(3, N_IN)   # good float inputs (T, n_in)


def _own_recurrence():
    """h(t) = tanh(W h(t-1) + U x(t)), o(t) = V h(t), written by a user."""
    rng = np.random.default_rng(1)
    W = tg.Parameter(rng.normal(0, 0.5, (N_HIDDEN, N_HIDDEN)), name="W")
    U = tg.Parameter(rng.normal(0, 0.5, (N_HIDDEN, N_IN)), name="U")
    V = tg.Parameter(rng.normal(0, 0.5, (N_OUT, N_HIDDEN)), name="V")
    return rnn.Recurrence(lambda h, x: (h @ W.T + x @ U.T).tanh(), [W, U, V], n_state=N_HIDDEN,
                          n_in=N_IN, readout=lambda h: h @ V.T)


GOOD_STEP = {
    "elman": (XS, YS), "jordan": (XS, YS), "seq2one": (XS, 1), "vec2seq": (np.ones(N_IN), YS),
    "conditional": (XS, YS), "system": (FLOATS, YS), "lstm": (XS, YS), "gru": (XS, YS),
    "bidirectional": (XS, YS), "encdec": (XS, YS[:2]),
}


class World:
    """Every design, each with an Adam optimizer after one training step, and saved checkpoints."""

    def __init__(self, folder, monkeypatch):
        self.folder = folder
        self.monkeypatch = monkeypatch
        self.models = {
            "elman": rnn.ElmanRNN(N_IN, N_HIDDEN, N_OUT),
            "jordan": rnn.JordanRNN(N_IN, N_HIDDEN, N_OUT),
            "seq2one": rnn.SequenceToOne(N_IN, N_HIDDEN, N_OUT),
            "vec2seq": rnn.VectorToSequence(N_IN, N_HIDDEN, N_OUT),
            "conditional": rnn.ConditionalRNN(N_IN, N_HIDDEN, N_OUT), "system": _own_recurrence(),
            "lstm": rnn.LSTM(N_IN, N_HIDDEN, N_OUT), "gru": rnn.GRU(N_IN, N_HIDDEN, N_OUT),
            "bidirectional": rnn.BidirectionalRNN(N_IN, N_HIDDEN, N_OUT),
            "encdec": rnn.EncoderDecoder(N_IN, N_HIDDEN, N_OUT),
        }
        self.optimizers = {k: tg.optim.Adam(m.parameters(), lr=0.01)
                           for k, m in self.models.items()}
        self.trainers = {k: rnn.Trainer(m, self.optimizers[k]) for k, m in self.models.items()}
        for key, trainer in self.trainers.items():
            trainer.step(*GOOD_STEP[key])
        self.elman = self.models["elman"]
        self.elman.save(folder / "elman.npz")
        tg.save_arrays(folder / "adam.npz", self.optimizers["elman"].state_dict())

    def snapshot(self):
        """Copies of every parameter, gradient and optimizer state array."""
        out = {}
        for key, model in self.models.items():
            for name, p in model.named_parameters():
                out[f"{key}.{name}"] = p.data.copy()
                out[f"{key}.{name}.grad"] = None if p.grad is None else p.grad.copy()
            for name, value in self.optimizers[key].state_dict().items():
                out[f"{key}.adam.{name}"] = value.copy()
        return out

    def checkpoint(self, name, change=None, drop=(), raw=None):
        """A checkpoint file: elman's state with ``change`` and ``drop``, or ``raw(folder)``."""
        path = self.folder / name
        if raw is not None:
            path.write_bytes(raw(self.folder))
            return path
        state = {k: v for k, v in self.elman.state_dict().items() if k not in drop}
        state.update(change or {})
        tg.save_arrays(path, state)
        return path

    def render_with(self, dot_program):
        self.monkeypatch.setenv("TINYGRAPH_DOT", str(dot_program))


# ---------------------------------------------------------- rows: setup(world) -> the bad call


def train(design, *args, **kwargs):
    """One training step of ``design`` on bad arguments (through its Trainer and Adam)."""
    return lambda w: lambda: w.trainers[design].step(*args, **kwargs)


def in_step(fn):
    """``fn(elman)`` run where an unroll runs its 4th step: scope "elman/t=4"."""
    def setup(w):
        def call():
            with tg.scope("elman"), tg.scope("t=4"):
                return fn(w.elman)
        return call
    return setup


def call(fn):
    """``fn(w)`` as the bad call."""
    return lambda w: lambda: fn(w)


def load(name, **kwargs):
    """Load the elman model from a checkpoint made by ``World.checkpoint(name, **kwargs)``."""
    def setup(w):
        path = w.checkpoint(name, **kwargs) if kwargs else w.folder / name
        return lambda: w.elman.load(path)
    return setup


def load_adam(state):
    """Load ``state(w)`` into elman's Adam."""
    return lambda w: lambda: w.optimizers["elman"].load_state_dict(state(w))


def second_backward(w):
    """A loss already back-propagated once (without retain_graph): its second backward."""
    loss = w.elman.loss(XS, YS)
    loss.backward()
    return loss.backward


def _truncated(folder):
    return (folder / "elman.npz").read_bytes()[:300]


def _pickled(folder):
    path = folder / "pickled.npz"
    np.savez(path, U=np.array([object()], dtype=object))
    return path.read_bytes()


def _failing_renderer(folder):
    script = folder / "broken-dot"
    script.write_text("#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 1\n")
    script.chmod(0o755)
    return script


def render_to(path_in, setup_path=None, program=None):
    """viz.save of elman's folded diagram to ``path_in(folder)``, optionally with a renderer."""
    def setup(w):
        if setup_path is not None:
            setup_path(w.folder)
        if program is not None:
            w.render_with(program(w.folder))
        digraph = viz.folded(w.elman)
        return lambda: viz.save(digraph, path_in(w.folder))
    return setup


def _blocker(folder):
    (folder / "file").write_text("not a folder")


def _make_dir(name):
    return lambda folder: (folder / name).mkdir()


def _cell_with_a_shape_bug(w):
    """The user's own cell whose step reads x(t) through W (H, H) instead of U (H, n_in)."""
    W, U, V = w.models["system"].parameters()
    buggy = rnn.Recurrence(lambda h, x: (h @ W.T + x @ W.T).tanh(), [W, U, V], n_state=N_HIDDEN,
                           n_in=N_IN, readout=lambda h: h @ V.T, name="mycell")
    return rnn.Trainer(buggy, w.optimizers["system"]).step(FLOATS, YS)


def _output_of_last_step(w):
    return w.elman(XS)[0][-1]          # o(T), shape (3,)


def with_grad(index, value):
    """The bad call gives Elman's parameter ``index`` the gradient ``value`` by hand: refused
    there, as PyTorch's ``p.grad = ...`` (it was kept, and refused by the next optimizer step or
    clip_grad_norm, or, a float32 one of a float64 parameter, rounded by it without a word)."""
    return lambda w: lambda: setattr(w.elman.parameters()[index], "grad", value)


def with_data_replaced(index, shape, optimizer):
    """Elman's parameter ``index`` with its gradient, then its data replaced by zeros of
    ``shape`` (the gradient left of the old shape); the bad call is a step of
    ``optimizer(params)``."""
    def setup(w):
        params = w.elman.parameters()
        params[index].grad = np.ones(params[index].shape)
        params[index].data = np.zeros(shape)
        return optimizer(params).step
    return setup


def backward_with(grad):
    return lambda w: lambda: w.elman.loss(XS, YS).backward(grad=grad)


def _npy_bytes(header, data=b""):
    """An npy member: the magic, version 1.0 and ``header`` (a dict literal), then ``data``."""
    header = header.encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def _zip(members, compress=zipfile.ZIP_STORED, edit=None):
    """raw(folder) -> the bytes of a zip of ``members`` (name -> bytes), optionally edited."""
    def raw(folder):
        path = folder / "made.zip"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # zipfile warns about a duplicate name
            with zipfile.ZipFile(path, "w", compress) as zf:
                for name, data in members:
                    zf.writestr(name, data)
        data = path.read_bytes()
        return data if edit is None else edit(data)
    return raw


def _claiming(shape):
    return _zip([("W.npy", _npy_bytes(f"{{'descr': '<f8', 'fortran_order': False, "
                                      f"'shape': {shape}, }}"))])


def _bomb(folder):
    """elman's 'W' (4, 4) followed by 64 MB of zeros, deflated to a few tens of KB."""
    body = np.zeros((4, 4)).tobytes() + bytes(64 << 20)
    return _zip([("W.npy", _npy_bytes("{'descr': '<f8', 'fortran_order': False, "
                                      "'shape': (4, 4), }", body))], zipfile.ZIP_DEFLATED)(folder)


def _set_compression(method, flags=0):
    """Rewrite every local and central header's compression method (and OR in ``flags``)."""
    def edit(data):
        data = bytearray(data)
        for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = data.find(sig)
            while i >= 0:
                data[i + at:i + at + 2] = (int.from_bytes(data[i + at:i + at + 2], "little")
                                           | flags).to_bytes(2, "little")
                data[i + at + 2:i + at + 4] = method.to_bytes(2, "little")
                i = data.find(sig, i + 4)
        return bytes(data)
    return edit


def _manifest(text):
    return _zip([("manifest.json", text), ("0.npy", _npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", bytes(32)))])


def _two_parameters_named_w(w):
    W1, W2 = tg.Parameter(np.ones(2), name="W"), tg.Parameter(np.ones(2), name="W")
    cell = rnn.Recurrence(lambda h: (h * W1 * W2).tanh(), [W1, W2], n_state=2)
    return cell.save(w.folder / "twins.npz")


def load_training(make):
    """rnn.load_training into elman's trainer from the file ``make(w)`` writes."""
    def setup(w):
        path = make(w)
        return lambda: rnn.load_training(path, w.trainers["elman"])
    return setup


def _training_file(w, name, change=None, drop=(), meta=None):
    rnn.save_training(w.folder / name, w.trainers["elman"])
    arrays = tg.load_arrays(w.folder / name)
    arrays = {k: v for k, v in arrays.items() if k not in drop}
    arrays.update(change or {})
    tg.save_arrays(w.folder / name, arrays,
                   meta=meta or {"trainer_steps": w.trainers["elman"].steps, "user": {}})
    return w.folder / name


def _jordan_training_file(w):
    rnn.save_training(w.folder / "jordan.ckpt", w.trainers["jordan"])
    return w.folder / "jordan.ckpt"


def _chatty_renderer(folder):
    script = folder / "chatty-dot"
    script.write_text("#!/bin/sh\necho 'all done'\n")
    script.chmod(0o755)
    return script


def resume(**change):
    """rnn.tasks.load_checkpoint of a year-task checkpoint whose meta has ``change``."""
    def setup(w):
        path = w.folder / "year.ckpt"
        rnn.tasks.save_checkpoint(path, rnn.tasks.YearTask(0), 0, [], 0)
        found = tg.read_checkpoint(path)
        found.meta["user"].update(change)
        tg.save_arrays(path, found.arrays, meta=found.meta)
        return lambda: rnn.tasks.load_checkpoint(path, "year")
    return setup


def _not_executable(folder):
    script = folder / "dot-not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    return script


# ---------------------------------------------------------------- the catalogue

E, B, D, BW, GF, C, CN, CF = (tg.ShapeError, tg.BadIndexError, tg.DTypeError, tg.BackwardError,
                              tg.GraphFreedError, tg.CheckpointError, tg.CheckpointNotFoundError,
                              tg.ConfigError)
RAGGED = [[0, 1, 2], [1, 2]]

CATALOGUE = [
    # --- engine ops: shape mismatch names the op, both shapes and the scope / time step
    ("op_add_shapes_in_step", in_step(lambda m: m.W + np.ones(3)), E, ValueError,
     ["add", "(4, 4)", "(3,)", "elman/t=4"]),
    ("op_matmul_shapes_in_step", in_step(lambda m: np.ones((2, 5)) @ m.W), E, ValueError,
     ["matmul", "(2, 5)", "(4, 4)", "elman/t=4"]),
    ("op_concat_shapes_in_step", in_step(lambda m: tg.concat([m.U, m.W], axis=0)), E, ValueError,
     ["concat", "(4, 5)", "(4, 4)", "elman/t=4"]),
    ("op_stack_shapes_in_step", in_step(lambda m: tg.stack([m.b, m.c])), E, ValueError,
     ["stack", "(4,)", "(3,)", "elman/t=4"]),
    ("op_reshape_size_in_step", in_step(lambda m: m.U.reshape(3, 7)), E, ValueError,
     ["reshape", "(4, 5)", "elman/t=4"]),
    ("op_cross_entropy_targets_in_step", in_step(lambda m: tg.cross_entropy(m.V, [0, 1])), E,
     ValueError, ["cross_entropy", "(3, 4)", "(2,)", "elman/t=4"]),
    ("op_take_id_out_of_range_in_step", in_step(lambda m: tg.take(m.U, [7], axis=1)), B,
     IndexError, ["take", "7", "[0, 5)", "elman/t=4"]),
    ("op_index_out_of_range_in_step", in_step(lambda m: m.b[9]), B, IndexError,
     ["index", "9", "(4,)", "elman/t=4"]),
    ("own_cell_shape_bug_names_its_scope_and_t1", call(_cell_with_a_shape_bug), E, ValueError,
     ["matmul", "(5,), (4, 4)", "mycell/t=1"]),
    # --- leaves and backward
    ("int_tensor_requires_grad", call(lambda w: tg.tensor(np.arange(3), requires_grad=True)), D,
     TypeError, ["int64", "float"]),
    ("bool_tensor_requires_grad", call(lambda w: tg.tensor([True, False], requires_grad=True)), D,
     TypeError, ["bool", "float"]),
    ("int_tensor_class_requires_grad", call(lambda w: tg.Tensor([1, 2], requires_grad=True)), D,
     TypeError, ["int64", "float"]),
    ("backward_non_scalar_output_without_grad", lambda w: _output_of_last_step(w).backward, BW,
     RuntimeError, ["backward", "(3,)", "grad="]),
    ("grad_of_non_scalar_output_without_grad",
     lambda w: lambda: tg.grad(_output_of_last_step(w), [w.elman.W]), BW, RuntimeError,
     ["(3,)", "grad="]),
    ("second_backward_through_freed_graph", second_backward, GF, RuntimeError,
     ["freed", "retain_graph=True"]),
    ("backward_grad_of_wrong_shape",
     lambda w: lambda: _output_of_last_step(w).backward(grad=np.ones(5)), E, ValueError,
     ["backward", "(5,)", "(3,)"]),
    ("grad_seed_of_wrong_shape",
     lambda w: lambda: tg.grad(_output_of_last_step(w), [w.elman.W], grad=np.ones((2, 3))), E,
     ValueError, ["(2, 3)", "(3,)"]),
    # --- rnn inputs: elman
    ("elman_xs_id_too_big", train("elman", [0, 7, 1], YS), B, IndexError,
     ["elman", "xs id 7", "t=2", "[0, 5)"]),
    ("elman_xs_id_negative_batched", train("elman", [[0, 1], [2, -1]], [[0, 1], [2, 0]]), B,
     IndexError, ["elman", "xs id -1", "t=2, b=1", "[0, 5)"]),
    ("elman_ys_id_too_big", train("elman", XS, [0, 1, 3]), B, IndexError,
     ["elman", "ys id 3", "t=3", "[0, 3)"]),
    ("elman_ys_id_negative", train("elman", XS, [-2, 1, 0]), B, IndexError,
     ["ys id -2", "t=1", "[0, 3)"]),
    ("elman_float_ids", train("elman", [0.0, 1.0, 2.0], YS), D, TypeError,
     ["elman", "float", "ids"]),
    ("elman_float_targets", train("elman", XS, [0.0, 1.0, 2.0]), D, TypeError, ["ys", "integer"]),
    ("elman_float_input_wrong_width", train("elman", np.zeros((3, 4)), YS), E, ValueError,
     ["width n_in=5", "(3, 4)"]),
    ("elman_batched_float_input_wrong_width", train("elman", np.zeros((3, 2, 6)), [[0, 1]] * 3), E,
     ValueError, ["width n_in=5", "(3, 2, 6)"]),
    ("elman_xs_ys_lengths_differ", train("elman", XS, [0, 1]), E, ValueError,
     ["3 steps", "ys has 2"]),
    ("elman_empty_sequence", train("elman", [], []), E, ValueError, ["elman", "empty sequence"]),
    ("elman_ragged_batch_without_mask", train("elman", RAGGED, RAGGED), E, ValueError,
     ["ragged", "mask="]),
    ("elman_mask_keeps_no_step_of_a_sequence",
     train("elman", [[0, 1], [1, 1]], [[0, 1], [1, 0]], mask=[[1, 0], [1, 0]]), E, ValueError,
     ["b=1", "empty"]),
    ("elman_h0_wrong_shape", train("elman", XS, YS, h0=np.zeros(3)), E, ValueError,
     ["h0", "(4,)", "(3,)"]),
    ("elman_h0_wrong_batch", train("elman", [[0], [1]], [[0], [1]], h0=np.zeros((2, 4))), E,
     ValueError, ["h0", "(1, 4)", "(2, 4)"]),
    ("elman_generate_from_empty_prompt", call(lambda w: w.elman.generate([], 3)), E, ValueError,
     ["elman", "empty"]),
    # --- lstm, gru, bidirectional, encoder-decoder (sections 10.3, 10.4, 10.10)
    ("lstm_xs_id_too_big", train("lstm", [0, 9, 1], YS), B, IndexError,
     ["lstm", "xs id 9", "t=2", "[0, 5)"]),
    ("lstm_h0_not_a_dict_of_its_parts", train("lstm", XS, YS, h0=np.zeros(4)), E, ValueError,
     ["lstm", "dict", "'s', 'h'"]),
    ("lstm_h0_part_of_wrong_shape", train("lstm", XS, YS, h0={"s": np.zeros(3)}), E, ValueError,
     ["h0['s']", "(4,)", "(3,)"]),
    ("lstm_unknown_candidate", call(lambda w: rnn.LSTM(N_IN, N_HIDDEN, N_OUT, candidate="relu")),
     CF, ValueError, ["LSTM", "candidate", "'relu'"]),
    ("gru_ragged_batch_without_mask", train("gru", RAGGED, RAGGED), E, ValueError,
     ["ragged", "mask="]),
    ("gru_ys_id_too_big", train("gru", XS, [0, 3, 1]), B, IndexError,
     ["gru", "ys id 3", "t=2", "[0, 3)"]),
    ("bidirectional_ys_id_too_big_batched", train("bidirectional", [[0, 1], [1, 2]],
                                                  [[0, 1], [2, 5]]), B, IndexError,
     ["bidirectional", "ys id 5", "t=2, b=1", "[0, 3)"]),
    ("bidirectional_mask_wrong_shape", train("bidirectional", [[0, 1], [1, 2]], [[0, 1], [2, 0]],
                                             mask=np.ones((3, 2))), E, ValueError,
     ["bidirectional", "mask", "(2, 2)", "(3, 2)"]),
    ("bidirectional_truncated_bptt", call(lambda w: rnn.truncated_bptt(
        w.trainers["bidirectional"], [0, 1, 2, 3], [0, 1, 2, 0], chunk=2)), CF, ValueError,
     ["truncated_bptt", "bidirectional", "not causal"]),
    ("encdec_empty_input", train("encdec", [], YS), E, ValueError, ["encdec", "empty sequence"]),
    ("encdec_empty_output", train("encdec", XS, []), E, ValueError, ["encdec", "ys", "empty"]),
    ("encdec_ys_id_too_big", train("encdec", XS, [0, 3]), B, IndexError,
     ["encdec", "ys id 3", "t=2", "[0, 3)"]),
    ("encdec_batches_differ", train("encdec", [[0, 1], [1, 2]], [[0, 1, 2]]), E, ValueError,
     ["encdec", "ys", "(1, 2)", "(1, 3)"]),
    # --- jordan (no h0: its only recurrence is output -> hidden)
    ("jordan_xs_id_too_big", train("jordan", [0, 1, 5], YS), B, IndexError,
     ["jordan", "xs id 5", "t=3", "[0, 5)"]),
    ("jordan_xs_id_negative", train("jordan", [-1, 1, 2], YS), B, IndexError,
     ["xs id -1", "t=1", "[0, 5)"]),
    ("jordan_ys_id_too_big", train("jordan", XS, [0, 4, 1]), B, IndexError,
     ["ys id 4", "t=2", "[0, 3)"]),
    ("jordan_float_ids", train("jordan", [0.0, 1.0, 2.0], YS), D, TypeError, ["jordan", "float"]),
    ("jordan_float_input_wrong_width", train("jordan", np.zeros((3, 7)), YS), E, ValueError,
     ["width n_in=5", "(3, 7)"]),
    ("jordan_xs_ys_lengths_differ", train("jordan", XS, [0, 1, 2, 0]), E, ValueError,
     ["3 steps", "ys has 4"]),
    ("jordan_empty_sequence", train("jordan", [], []), E, ValueError, ["jordan", "empty sequence"]),
    ("jordan_ragged_batch", train("jordan", RAGGED, RAGGED), E, ValueError, ["ragged", "mask="]),
    # --- sequence to one
    ("seq2one_xs_id_too_big", train("seq2one", [0, 9, 1], 1), B, IndexError,
     ["seq2one", "xs id 9", "t=2", "[0, 5)"]),
    ("seq2one_xs_id_negative", train("seq2one", [0, 1, -3], 1), B, IndexError,
     ["xs id -3", "t=3", "[0, 5)"]),
    ("seq2one_y_id_too_big", train("seq2one", XS, 3), B, IndexError, ["y id 3", "[0, 3)"]),
    ("seq2one_y_id_negative", train("seq2one", XS, -1), B, IndexError, ["y id -1", "[0, 3)"]),
    ("seq2one_float_ids", train("seq2one", [0.0, 1.0, 2.0], 1), D, TypeError, ["seq2one", "float"]),
    ("seq2one_float_target", train("seq2one", XS, 1.0), D, TypeError, ["y", "integer"]),
    ("seq2one_float_input_wrong_width", train("seq2one", np.zeros((3, 1)), 1), E, ValueError,
     ["width n_in=5", "(3, 1)"]),
    ("seq2one_batch_of_xs_and_y_differ", train("seq2one", [[0, 1], [1, 2]], [0]), E, ValueError,
     ["y", "(2,)", "(1,)"]),
    ("seq2one_empty_sequence", train("seq2one", [], 1), E, ValueError,
     ["seq2one", "empty sequence"]),
    ("seq2one_ragged_batch", train("seq2one", RAGGED, [0, 1]), E, ValueError, ["ragged", "mask="]),
    ("seq2one_h0_wrong_shape", train("seq2one", XS, 1, h0=np.zeros(5)), E, ValueError,
     ["h0", "(4,)", "(5,)"]),
    # --- vector to sequence (its input is one float vector x)
    ("vec2seq_x_wrong_width", train("vec2seq", np.ones(4), YS), E, ValueError,
     ["x", "(5,)", "(4,)"]),
    ("vec2seq_integer_x", train("vec2seq", np.arange(5), YS), D, TypeError,
     ["x", "float", "int64"]),
    ("vec2seq_ys_id_too_big", train("vec2seq", np.ones(N_IN), [0, 1, 7]), B, IndexError,
     ["vec2seq", "ys id 7", "t=3", "[0, 3)"]),
    ("vec2seq_ys_id_negative", train("vec2seq", np.ones(N_IN), [0, -1, 1]), B, IndexError,
     ["ys id -1", "t=2", "[0, 3)"]),
    ("vec2seq_float_targets", train("vec2seq", np.ones(N_IN), [0.0, 1.0]), D, TypeError,
     ["ys", "integer"]),
    ("vec2seq_batch_of_x_and_ys_differ", train("vec2seq", np.ones((2, N_IN)), [[0], [1], [2]]), E,
     ValueError, ["ys", "(3, 2)", "(3, 1)"]),
    ("vec2seq_empty_sequence", train("vec2seq", np.ones(N_IN), []), E, ValueError,
     ["vec2seq", "empty sequence"]),
    ("vec2seq_ragged_targets", train("vec2seq", np.ones((2, N_IN)), RAGGED), E, ValueError,
     ["vec2seq", "ragged"]),
    ("vec2seq_h0_wrong_shape", train("vec2seq", np.ones(N_IN), YS, h0=np.zeros((1, 4))), E,
     ValueError, ["h0", "(4,)", "(1, 4)"]),
    # --- conditional (x(t) -> y(t), y(t-1) -> h(t))
    ("conditional_xs_id_too_big", train("conditional", [5, 1, 2], YS), B, IndexError,
     ["conditional", "xs id 5", "t=1", "[0, 5)"]),
    ("conditional_xs_id_negative", train("conditional", [[0, 1], [1, 1], [-4, 0]], [[0, 1]] * 3), B,
     IndexError, ["xs id -4", "t=3, b=0", "[0, 5)"]),
    ("conditional_ys_id_too_big", train("conditional", XS, [0, 1, 9]), B, IndexError,
     ["ys id 9", "t=3", "[0, 3)"]),
    ("conditional_float_ids", train("conditional", [0.0, 1.0, 2.0], YS), D, TypeError,
     ["conditional", "float"]),
    ("conditional_float_input_wrong_width", train("conditional", np.zeros((3, 3)), YS), E,
     ValueError, ["width n_in=5", "(3, 3)"]),
    ("conditional_xs_ys_lengths_differ", train("conditional", [0, 1], YS), E, ValueError,
     ["2 steps", "ys has 3"]),
    ("conditional_empty_sequence", train("conditional", [], []), E, ValueError,
     ["conditional", "empty sequence"]),
    ("conditional_ragged_batch", train("conditional", RAGGED, RAGGED), E, ValueError,
     ["ragged", "mask="]),
    ("conditional_h0_wrong_shape", train("conditional", XS, YS, h0=np.zeros((4, 1))), E, ValueError,
     ["h0", "(4,)", "(4, 1)"]),
    # --- a user's own recurrence (float inputs)
    ("own_cell_float_input_wrong_width", train("system", np.zeros((3, 2)), YS), E, ValueError,
     ["system", "width n_in=5", "(3, 2)"]),
    ("own_cell_ids_instead_of_vectors", train("system", XS, YS), D, TypeError,
     ["system", "float input vectors"]),
    ("own_cell_xs_ys_lengths_differ", train("system", FLOATS, [0, 1]), E, ValueError,
     ["3 steps", "ys has 2"]),
    ("own_cell_target_out_of_range", train("system", FLOATS, [0, 1, 3]), B, IndexError,
     ["cross_entropy", "3", "[0, 3)", "system/t=3"]),
    ("own_cell_empty_sequence", train("system", np.zeros((0, N_IN)), []), E, ValueError,
     ["system", "empty sequence"]),
    ("own_cell_ragged_batch", train("system", [[[0.0] * 5] * 2, [[0.0] * 5]], RAGGED), E,
     ValueError, ["ragged", "mask="]),
    ("own_cell_h0_wrong_shape", train("system", FLOATS, YS, h0=np.zeros(2)), E, ValueError,
     ["system", "h0", "(4,)", "(2,)"]),
    # --- optimizers, clipping and training settings
    ("sgd_negative_lr", call(lambda w: tg.optim.SGD(w.elman.parameters(), lr=-0.5)), CF, ValueError,
     ["SGD", "lr", "-0.5"]),
    ("adagrad_nan_lr", call(lambda w: tg.optim.Adagrad(w.elman.parameters(), lr=float("nan"))), CF,
     ValueError, ["Adagrad", "lr"]),
    ("adam_negative_lr", call(lambda w: tg.optim.Adam(w.elman.parameters(), lr=-1e-3)), CF,
     ValueError, ["Adam", "lr", "-0.001"]),
    ("sgd_empty_parameter_list", call(lambda w: tg.optim.SGD([], lr=0.1)), CF, ValueError,
     ["SGD", "empty"]),
    ("adam_empty_parameter_list", call(lambda w: tg.optim.Adam([], lr=0.1)), CF, ValueError,
     ["Adam", "empty"]),
    ("sgd_single_tensor_as_params", call(lambda w: tg.optim.SGD(w.elman.W, lr=0.1)), CF,
     ValueError, ["SGD", "single Tensor", "list"]),
    ("adam_params_none", call(lambda w: tg.optim.Adam(None, lr=0.1)), CF, ValueError,
     ["Adam", "NoneType"]),
    ("clip_single_tensor_as_params", call(lambda w: tg.clip_grad_norm(w.elman.W, 1.0)), CF,
     ValueError, ["clip_grad_norm", "single Tensor"]),
    ("sgd_boolean_lr", call(lambda w: tg.optim.SGD(w.elman.parameters(), lr=True)), CF,
     ValueError, ["SGD", "lr", "True"]),
    ("sgd_text_momentum",
     call(lambda w: tg.optim.SGD(w.elman.parameters(), lr=0.1, momentum="high")), CF, ValueError,
     ["SGD", "momentum", "high"]),
    ("adam_betas_none", call(lambda w: tg.optim.Adam(w.elman.parameters(), betas=None)), CF,
     ValueError, ["Adam", "betas", "pair"]),
    ("adam_negative_eps", call(lambda w: tg.optim.Adam(w.elman.parameters(), eps=-1e-8)), CF,
     ValueError, ["Adam", "eps", "-1e-08"]),
    ("adagrad_zero_eps", call(lambda w: tg.optim.Adagrad(w.elman.parameters(), 0.1, eps=0)), CF,
     ValueError, ["Adagrad", "eps"]),
    ("clip_zero_max_norm", call(lambda w: tg.clip_grad_norm(w.elman.parameters(), 0)), CF,
     ValueError, ["clip_grad_norm", "max_norm", "0"]),
    ("clip_negative_max_norm", call(lambda w: tg.clip_grad_norm(w.elman.parameters(), -1.0)), CF,
     ValueError, ["clip_grad_norm", "max_norm", "-1.0"]),
    ("clip_empty_parameter_list", call(lambda w: tg.clip_grad_norm([], 1.0)), CF, ValueError,
     ["clip_grad_norm", "empty"]),
    ("trainer_negative_lr", call(lambda w: rnn.Trainer(w.elman, lr=-1)), CF, ValueError, ["lr", "-1"]),
    ("trainer_negative_clip", call(lambda w: rnn.Trainer(w.elman, w.optimizers["elman"], clip=-1)),
     CF, ValueError, ["clip", "-1"]),
    ("truncated_bptt_zero_chunk",
     call(lambda w: rnn.truncated_bptt(w.trainers["elman"], XS, YS, chunk=0)), CF, ValueError,
     ["chunk", "0"]),
    # --- checkpoints: refused before anything changes
    ("load_missing_file", load("nowhere.npz"), CN, FileNotFoundError, ["nowhere.npz"]),
    ("load_corrupt_file", load("corrupt.npz", raw=lambda f: b"PK\x03\x04 not a zip" * 20), C,
     ValueError, ["corrupt.npz", "not a readable checkpoint"]),
    ("load_truncated_file", load("truncated.npz", raw=_truncated), C, ValueError,
     ["truncated.npz", "not a readable checkpoint"]),
    ("load_empty_file", load("empty.npz", raw=lambda f: b""), C, ValueError,
     ["empty.npz", "not a readable checkpoint"]),
    ("load_pickled_objects", load("pickled.npz", raw=_pickled), C, ValueError,
     ["pickled.npz", "not a readable checkpoint"]),
    ("load_missing_name", load("no_w.npz", drop=("W",)), C, ValueError, ["missing ['W']"]),
    ("load_extra_name", load("extra.npz", change={"Z": np.zeros(2)}), C, ValueError,
     ["unexpected ['Z']"]),
    ("load_wrong_shape", load("shape.npz", change={"W": np.zeros((3, 3))}), C, ValueError,
     ["'W'", "(3, 3)", "(4, 4)"]),
    ("load_wrong_dtype", load("f32.npz", change={"V": np.zeros((3, 4), np.float32)}), C, ValueError,
     ["'V'", "float32", "float64"]),
    ("load_integer_dtype", load("int.npz", change={"b": np.zeros(4, np.int64)}), C, ValueError,
     ["'b'", "int64"]),
    ("load_another_designs_checkpoint",
     call(lambda w: w.elman.load_state_dict(w.models["jordan"].state_dict())), C, ValueError,
     ["'W'", "(4, 3)", "(4, 4)"]),
    ("load_state_dict_with_ragged_value",
     call(lambda w: w.elman.load_state_dict({**w.elman.state_dict(), "b": [[1.0], [1.0, 2.0]]})), C,
     ValueError, ["'b'"]),
    ("adam_load_truncated_file",
     load_adam(lambda w: tg.load_arrays(w.checkpoint("adam_cut.npz", raw=lambda f: (
         f / "adam.npz").read_bytes()[:200]))), C, ValueError, ["adam_cut.npz"]),
    ("adam_load_wrong_shape", load_adam(lambda w: {"steps": np.array(1), "0.m": np.zeros((5, 4))}),
     C, ValueError, ["Adam", "'0.m'", "(5, 4)", "(4, 5)"]),
    ("adam_load_missing_steps", load_adam(lambda w: {"0.m": np.zeros((4, 5))}), C, ValueError,
     ["Adam", "'steps'"]),
    ("adam_load_extra_parameter", load_adam(lambda w: {"steps": np.array(1), "9.m": np.zeros(2)}),
     C, ValueError, ["Adam", "'9.m'"]),
    ("adam_load_sgd_state",
     load_adam(lambda w: {"steps": np.array(1), "0.velocity": np.zeros((4, 5))}),
     C, ValueError, ["Adam", "'0.velocity'"]),
    ("adam_load_text_state",
     load_adam(lambda w: {"steps": np.array(1), "0.m": np.full((4, 5), "x")}), C, ValueError,
     ["Adam", "'0.m'", "<U1"]),
    ("adam_load_float32_state",
     load_adam(lambda w: {"steps": np.array(1), "0.v": np.zeros((4, 5), np.float32)}), C,
     ValueError, ["Adam", "'0.v'", "float32", "float64"]),
    ("adam_load_ragged_state",
     load_adam(lambda w: {"steps": np.array(1), "0.m": [[0.0], [0.0, 1.0]]}), C, ValueError,
     ["Adam", "'0.m'", "not an array"]),
    ("adam_load_negative_steps", load_adam(lambda w: {"steps": np.array(-3)}), C, ValueError,
     ["Adam", "'steps'", "-3"]),
    ("adam_load_fractional_steps", load_adam(lambda w: {"steps": np.array(2.5)}), C, ValueError,
     ["Adam", "'steps'", "2.5"]),
    ("adam_load_steps_not_a_scalar", load_adam(lambda w: {"steps": np.array([1, 2])}), C,
     ValueError, ["Adam", "'steps'"]),
    ("save_into_missing_folder", call(lambda w: w.elman.save(w.folder / "no" / "such" / "m.npz")),
     tg.CheckpointWriteError, OSError, ["save", "m.npz"]),
    ("save_onto_a_folder", call(lambda w: w.elman.save(w.folder)), tg.CheckpointWriteError, OSError,
     ["save", "Is a directory"]),
    # --- rendering
    ("render_without_graphviz", render_to(lambda f: f / "fig.svg",
                                          program=lambda f: "/nonexistent/dot"), viz.RenderError,
     RuntimeError, ["TINYGRAPH_DOT", "pip install graphviz-pure"]),
    ("render_with_a_failing_program", render_to(lambda f: f / "fig.svg", program=_failing_renderer),
     viz.RenderError, RuntimeError, ["renderer failed", "syntax error"]),
    ("render_into_a_file_as_folder", render_to(lambda f: f / "file" / "fig.svg", _blocker),
     viz.OutputPathError, OSError, ["viz.save", "fig.svg"]),
    ("render_dot_onto_a_folder", render_to(lambda f: f / "out.dot", _make_dir("out.dot")),
     viz.OutputPathError, OSError, ["viz.save", "out.dot"]),
    ("render_unknown_suffix", render_to(lambda f: f / "fig.pdf"), viz.RenderError, RuntimeError,
     [".svg", ".png", "fig.pdf"]),
    ("render_unknown_format", call(lambda w: viz.render(viz.folded(w.elman), "jpeg")),
     viz.RenderError, RuntimeError, ["jpeg", "svg"]),
    ("unknown_figure_name", call(lambda w: viz.figure("10.19")), CF, ValueError,
     ["10.19", "10.10"]),
    ("unknown_figure_number", call(lambda w: viz.figure(11)), CF, ValueError, ["'11'", "10.1"]),
    ("graph_of_an_array", call(lambda w: viz.graph(np.ones(3))), tg.DTypeError, TypeError,
     ["viz.graph", "ndarray"]),
    ("folded_of_a_non_model", call(lambda w: viz.folded(object())), tg.DTypeError, TypeError,
     ["viz.folded", "trace", "object"]),
    ("unrolled_of_a_non_model", call(lambda w: viz.unrolled(3)), tg.DTypeError, TypeError,
     ["viz.unrolled", "int"]),
    # --- rnn misuse found by the catalogue's first run
    ("loss_without_targets", call(lambda w: w.elman.loss(np.array([0, 1]))), tg.ShapeError,
     ValueError, ["elman.loss", "targets"]),
    ("trainer_clip_not_a_number", call(lambda w: rnn.Trainer(w.elman, clip="a")), tg.ConfigError,
     ValueError, ["Trainer", "clip"]),
    ("recurrence_step_changes_state_shape",
     call(lambda w: rnn.Recurrence(lambda h, x: tg.concat([h, x], axis=-1), [w.elman.W],
                                   n_state=N_HIDDEN, n_in=2).run(np.ones((3, 2)))),
     tg.ShapeError, ValueError, ["t=1", "state"]),
    # --- issue 15: optimizers and clipping are all or nothing (the last parameter's grad is bad)
    ("sgd_step_grad_of_a_parameter_whose_data_changed_shape",
     with_data_replaced(-1, (7,), lambda ps: tg.optim.SGD(ps, lr=0.1)), E, ValueError,
     ["SGD.step", "parameter 4 'c'", "(7,)", "(3,)"]),
    ("momentum_sgd_step_grad_of_a_parameter_whose_data_changed_shape",
     with_data_replaced(-1, (3, 1), lambda ps: tg.optim.SGD(ps, lr=0.1, momentum=0.9)), E,
     ValueError, ["SGD.step", "(3, 1)", "(3,)"]),
    ("grad_of_wrong_shape", with_grad(-1, np.ones((2, 2))), E, ValueError,
     ["tensor 'c'.grad", "shape (3,)", "(2, 2)"]),
    ("grad_that_would_broadcast", with_grad(-1, np.ones(1)), E, ValueError,
     ["tensor 'c'.grad", "shape (3,)", "(1,)"]),
    ("grad_of_integers", with_grad(-1, np.ones(3, dtype=np.int64)), D, TypeError,
     ["tensor 'c'.grad", "dtype float64", "int64"]),
    ("grad_of_objects", with_grad(-1, np.array([1.0, None, 3.0])), D, TypeError,
     ["tensor 'c'.grad", "float64", "object"]),
    ("grad_of_another_float_dtype", with_grad(-1, np.ones(3, dtype=np.float32)), D, TypeError,
     ["tensor 'c'.grad", "dtype float64", "float32"]),
    ("grad_a_list", with_grad(-1, [1.0, 2.0, 3.0]), D, TypeError,
     ["tensor 'c'.grad", "array", "list"]),
    ("adam_load_state_missing_v",
     load_adam(lambda w: {"steps": np.array(1), "0.m": np.zeros((4, 5))}), C, ValueError,
     ["Adam", "incomplete", "0.v"]),
    ("adam_load_state_a_list", load_adam(lambda w: [np.array(1)]), C, ValueError,
     ["Adam", "dict", "list"]),
    ("adam_load_state_non_string_key",
     load_adam(lambda w: {"steps": np.array(1), 0: np.zeros((4, 5))}), C, ValueError,
     ["Adam", "unexpected entry 0"]),
    ("adam_load_state_odd_key",
     load_adam(lambda w: {"steps": np.array(1), "0.m.extra": np.zeros((4, 5))}), C, ValueError,
     ["Adam", "'0.m.extra'"]),
    ("adam_load_state_unicode_digit_index",
     load_adam(lambda w: {"steps": np.array(1), "\u0663.m": np.zeros((4, 5))}), C, ValueError,
     ["Adam", "unexpected entry"]),
    ("adam_load_steps_beyond_int64", load_adam(lambda w: {"steps": 2**64}), C, ValueError,
     ["Adam", "'steps'"]),
    ("module_load_state_dict_none", call(lambda w: w.elman.load_state_dict(None)), C, ValueError,
     ["load_state_dict", "dict", "NoneType"]),
    # --- issue 15: grad= and tg.grad inputs of the wrong kind
    ("backward_complex_grad", backward_with(np.array(1 + 2j)), D, TypeError,
     ["backward", "complex128"]),
    ("backward_text_grad", backward_with(np.array("1.5")), D, TypeError, ["backward", "<U3"]),
    ("backward_object_grad", backward_with(np.array(None)), D, TypeError, ["backward", "object"]),
    ("backward_datetime_grad", backward_with(np.datetime64("2020-01-01")), D, TypeError,
     ["backward", "datetime64"]),
    ("grad_of_an_array_input", call(lambda w: tg.grad(w.elman.loss(XS, YS), [np.ones(2)])), D,
     TypeError, ["grad", "Tensors", "ndarray", "position 0"]),
    ("grad_of_a_number_as_inputs", call(lambda w: tg.grad(w.elman.loss(XS, YS), 3)), D,
     TypeError, ["grad", "int"]),
    # --- issue 15: indexing beyond the integer range
    ("op_index_beyond_int64_in_step", in_step(lambda m: m.b[2**63]), B, IndexError,
     ["index", "9223372036854775808", "(4,)", "elman/t=4"]),
    ("op_index_uint64_max_scalar", in_step(lambda m: m.b[np.uint64(2**64 - 1)]), B, IndexError,
     ["index", "18446744073709551615", "(4,)"]),
    ("op_index_uint64_max_array",
     in_step(lambda m: m.b[np.array([0, 2**64 - 1], dtype=np.uint64)]), B, IndexError,
     ["index", "18446744073709551615", "(4,)", "elman/t=4"]),
    ("elman_uint64_id_beyond_int64",
     train("elman", np.array([0, 2**64 - 1, 1], dtype=np.uint64), YS), B, IndexError,
     ["elman", "xs id 18446744073709551615", "t=2"]),
    ("elman_uint64_target_beyond_int64",
     train("elman", XS, np.array([0, 1, 2**64 - 1], dtype=np.uint64)), B, IndexError,
     ["elman", "ys id 18446744073709551615", "t=3"]),
    # --- issue 15: inputs that got through
    ("own_cell_float_xs_with_an_empty_batch", train("system", np.zeros((3, 0, N_IN)),
                                                    np.zeros((3, 0), int)), E, ValueError,
     ["system", "empty batch", "(3, 0, 5)"]),
    ("jordan_y0_of_one_row_for_a_batch_of_two",
     train("jordan", [[0, 1]] * 3, [[0, 1]] * 3, y0=tg.tensor(np.zeros((1, N_OUT)))), E,
     ValueError, ["jordan", "y0", "(2, 3)", "(1, 3)"]),
    ("conditional_y0_of_one_row_for_a_batch_of_two",
     train("conditional", [[0, 1]] * 3, [[0, 1]] * 3, y0=tg.tensor(np.zeros((1, N_OUT)))), E,
     ValueError, ["conditional", "y0", "(2, 3)", "(1, 3)"]),
    ("conditional_y0_ids_out_of_range",
     train("conditional", [[0, 1]] * 3, [[0, 1]] * 3, y0=tg.tensor(np.array([0, 7]))), B,
     IndexError, ["conditional", "y0 id 7"]),
    # --- issue 15: helpers
    ("generate_temperature_text", call(lambda w: w.elman.generate([0], 3, temperature="hot")),
     CF, ValueError, ["temperature", "'hot'"]),
    ("generate_temperature_nan",
     call(lambda w: w.elman.generate([0], 3, temperature=float("nan"))), CF, ValueError,
     ["temperature", "nan"]),
    ("generate_negative_seed", call(lambda w: w.elman.generate([0], 3, seed=-1)), CF, ValueError,
     ["seed", "-1"]),
    ("jordan_generate_seed_text", call(lambda w: w.models["jordan"].generate(XS, seed="x")), CF,
     ValueError, ["seed", "'x'"]),
    ("truncated_bptt_xs_none",
     call(lambda w: rnn.truncated_bptt(w.trainers["elman"], None, YS, chunk=2)), E, ValueError,
     ["truncated_bptt", "xs is None"]),
    ("truncated_bptt_xs_0d",
     call(lambda w: rnn.truncated_bptt(w.trainers["elman"], 3, YS, chunk=2)), E, ValueError,
     ["truncated_bptt", "xs", "single value"]),
    ("truncated_bptt_ragged_xs",
     call(lambda w: rnn.truncated_bptt(w.trainers["elman"], RAGGED, YS, chunk=2)), E,
     ValueError, ["truncated_bptt", "ragged"]),
    ("stream_loss_ys_none", call(lambda w: rnn.stream_loss(w.elman, XS, None)), E, ValueError,
     ["stream_loss", "ys is None"]),
    ("stream_loss_ys_0d", call(lambda w: rnn.stream_loss(w.elman, XS, 1)), E, ValueError,
     ["stream_loss", "ys", "single value"]),
    ("stream_loss_ragged_xs", call(lambda w: rnn.stream_loss(w.elman, RAGGED, YS)), E,
     ValueError, ["stream_loss", "ragged"]),
    ("pad_sequences_0d_item", call(lambda w: rnn.pad_sequences([[0, 1], 3])), E, ValueError,
     ["pad_sequences", "at least one step"]),
    ("pad_sequences_mixed_widths",
     call(lambda w: rnn.pad_sequences([np.zeros((2, 3)), np.zeros((1, 4))])), E, ValueError,
     ["pad_sequences", "sequence 1", "(4,)", "(3,)"]),
    ("pad_sequences_pad_outside_uint8",
     call(lambda w: rnn.pad_sequences([np.array([1, 2], np.uint8), np.array([3], np.uint8)],
                                      pad=-1)), CF, ValueError,
     ["pad_sequences", "pad=-1", "uint8"]),
    ("pad_sequences_fractional_pad_of_ids", call(lambda w: rnn.pad_sequences([[1, 2]], pad=0.5)),
     CF, ValueError, ["pad=0.5", "int64"]),
    ("stream_batches_zero_streams",
     call(lambda w: rnn.datasets.stream_batches(np.arange(10), 0)), CF, ValueError,
     ["stream_batches", "batch_size", "0"]),
    ("stream_batches_2d_ids",
     call(lambda w: rnn.datasets.stream_batches(np.zeros((5, 2), int), 2)), E, ValueError,
     ["stream_batches", "(5, 2)"]),
    # float ids were cut into float streams (T, B), which a model with n_in == B reads as T
    # input vectors without a word; the docstring promised int64
    ("stream_batches_float_ids",
     call(lambda w: rnn.datasets.stream_batches(np.arange(10.0), 2)), D, TypeError,
     ["stream_batches", "integer ids", "float64"]),
    ("vocab_decode_negative_id", call(lambda w: rnn.Vocab("abc").decode([0, -1])), B, IndexError,
     ["Vocab.decode", "id -1", "position 1", "[0, 3)"]),
    ("vocab_decode_id_too_big", call(lambda w: rnn.Vocab("abc").decode([3])), B, IndexError,
     ["Vocab.decode", "id 3", "[0, 3)"]),
    ("vocab_decode_float_ids", call(lambda w: rnn.Vocab("abc").decode([1.5])), D, TypeError,
     ["Vocab.decode", "float64"]),
    # --- issue 15: checkpoints that break on names, or hostile files
    ("save_two_parameters_named_alike", call(_two_parameters_named_w), C, ValueError,
     ["two parameters", "'W'"]),
    ("save_an_object_array",
     call(lambda w: tg.save_arrays(w.folder / "obj.npz", {"seed": np.array(2**64)})), C,
     ValueError, ["save", "'seed'", "object", "numeric"]),
    ("save_a_text_array",
     call(lambda w: tg.save_arrays(w.folder / "txt.npz", {"task": np.array("chars")})), C,
     ValueError, ["save", "'task'", "<U5", "meta="]),
    ("save_meta_not_json",
     call(lambda w: tg.save_arrays(w.folder / "m.npz", {}, meta={"when": object()})), C,
     ValueError, ["save", "meta", "JSON"]),
    ("save_a_name_not_text", call(lambda w: tg.save_arrays(w.folder / "n.npz", {3: np.ones(2)})),
     C, ValueError, ["save", "names must be strings", "3"]),
    ("load_header_claiming_1e12_entries", load("huge.npz", raw=_claiming("(1000000000000,)")), C,
     ValueError, ["huge.npz", "'W'", "(1000000000000,)", "expected (4, 4)"]),
    ("load_arrays_header_claiming_1e12_entries",
     call(lambda w: tg.load_arrays(w.checkpoint("huge2.npz", raw=_claiming("(1000000000000,)")))), C,
     ValueError, ["huge2.npz", "'W'", "8,000,000,000,000 bytes"]),
    ("load_header_with_negative_shape", load("neg.npz", raw=_claiming("(-4, 4)")), C,
     ValueError, ["neg.npz", "'W'", "shape"]),
    ("load_deflated_zip_bomb", load("bomb.npz", raw=_bomb), C, ValueError,
     ["bomb.npz", "'W'", "more data than its header claims"]),
    ("load_data_shorter_than_header",
     load("short.npz", raw=_zip([("W.npy", _npy_bytes(
         "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 4), }", bytes(40)))])), C,
     ValueError, ["short.npz", "'W'", "ends after 40 of 128 bytes"]),
    ("load_header_cut_short",
     load("cut.npz", raw=_zip([("W.npy", _npy_bytes("{'descr': '<f8', 'shape': (4,"))])), C,
     ValueError, ["cut.npz", "'W'", "TokenError"]),
    ("load_unsupported_compression",
     load("bz.npz", raw=_zip([("W.npy", b"x")], edit=_set_compression(12))), C, ValueError,
     ["bz.npz", "unsupported compression", "method 12"]),
    ("load_encrypted_member",
     load("enc.npz", raw=_zip([("W.npy", b"x")], edit=_set_compression(0, flags=1))), C,
     ValueError, ["enc.npz", "encrypted"]),
    ("load_member_twice", load("twice.npz", raw=_zip([("W.npy", b"a"), ("W.npy", b"b")])), C,
     ValueError, ["twice.npz", "'W.npy' twice"]),
    ("load_text_array", load("text.npz", raw=_zip([("W.npy", _npy_bytes(
        "{'descr': '<U5', 'fortran_order': False, 'shape': (4, 4), }", bytes(320)))])), C,
     ValueError, ["text.npz", "'W'", "<U5", "not a numeric dtype"]),
    ("load_not_a_zip", load("text.npz", raw=lambda f: b"hello, I am not a checkpoint\n"), C,
     ValueError, ["text.npz", "not a readable checkpoint", "BadZipFile"]),
    ("load_manifest_not_json", load("nojson.npz", raw=_manifest("{not json")), C, ValueError,
     ["nojson.npz", "'manifest.json'", "JSONDecodeError"]),
    ("load_manifest_of_another_format",
     load("other.npz", raw=_manifest('{"format": "other", "names": ["W"]}')), C, ValueError,
     ["other.npz", "not a tinygraph-checkpoint manifest"]),
    ("load_manifest_of_a_later_version",
     load("v9.npz", raw=_manifest('{"format": "tinygraph-checkpoint", "version": 9, '
                                  '"names": ["W"]}')), C, ValueError,
     ["v9.npz", "version 9"]),
    ("load_manifest_naming_an_array_twice",
     load("dup.npz", raw=_manifest('{"format": "tinygraph-checkpoint", "version": 1, '
                                   '"names": ["W", "W"]}')), C, ValueError,
     ["dup.npz", "twice"]),
    ("load_manifest_and_members_disagree",
     load("gap.npz", raw=_manifest('{"format": "tinygraph-checkpoint", "version": 1, '
                                   '"names": ["W", "U"]}')), C, ValueError,
     ["gap.npz", "do not match the manifest", "1.npy"]),
    ("load_training_negative_trainer_steps",
     load_training(lambda w: _training_file(w, "neg.ckpt", meta={"trainer_steps": -5,
                                                                  "user": {}})), C, ValueError,
     ["neg.ckpt", "rnn.save_training", "-5"]),
    ("load_training_of_another_design", load_training(_jordan_training_file), C, ValueError,
     # the design is named before W's shape (4, 3), (4, 4) expected: the file's recorded
     # settings are read when its entries do not fit
     ["jordan.ckpt", "the file has model='JordanRNN', the model model='ElmanRNN'"]),
    ("load_training_with_incomplete_optimizer_state",
     load_training(lambda w: _training_file(w, "half.ckpt", drop=("optim/0.v",))), C,
     ValueError, ["half.ckpt", "incomplete", "0.v"]),
    ("load_training_with_an_unknown_entry",
     load_training(lambda w: _training_file(w, "more.ckpt", change={"extra/h": np.ones(4)})), C,
     ValueError, ["more.ckpt", "unexpected ['extra/h']"]),
    ("resume_meta_step_negative", resume(step=-5), C, ValueError,
     ["year.ckpt", "meta step -5", "step >= 0"]),
    ("resume_meta_step_beyond_the_losses", resume(step=7), C, ValueError,
     ["year.ckpt", "meta step 7", "0 losses"]),
    ("resume_meta_step_fractional", resume(step=1.5), C, ValueError, ["meta step 1.5"]),
    ("resume_meta_seed_beyond_32_bits", resume(seed=2**64), C, ValueError,
     ["seed 18446744073709551616", "[0, 4294967295]"]),
    ("resume_meta_of_another_task", resume(task="copy"), C, ValueError,
     ["task 'copy'", "not 'year'"]),
    # --- issue 15: the renderer program
    ("render_with_a_non_executable_program",
     render_to(lambda f: f / "fig.svg", program=_not_executable), viz.RenderError, RuntimeError,
     ["TINYGRAPH_DOT", "dot-not-executable", "not executable"]),
    ("render_with_a_program_that_writes_nothing",
     render_to(lambda f: f / "fig.svg", program=lambda f: "/bin/true"), viz.RenderError,
     RuntimeError, ["/bin/true", "no output"]),
    ("render_with_a_program_that_writes_no_svg",
     render_to(lambda f: f / "fig.svg", program=_chatty_renderer), viz.RenderError,
     RuntimeError, ["chatty-dot", "no SVG"]),
    ("render_with_a_missing_program",
     render_to(lambda f: f / "fig.svg", program=lambda f: f / "nowhere" / "dot"),
     viz.RenderError, RuntimeError, ["TINYGRAPH_DOT", "does not exist"]),
    ("plot_onto_a_folder",
     call(lambda w: plots.loss_curve([1, 2], [1.0, 0.5], str(w.folder))), viz.OutputPathError,
     OSError, ["viz.plots", "Is a directory"]),
    ("page_into_a_missing_folder",
     call(lambda w: page.Page("t").write(str(w.folder / "no" / "such"))),
     viz.OutputPathError, OSError, ["page", "index.html"]),
]


CATALOGUE += [   # --- issue 13: the designs of sections 10.5-10.12
    ("esn_spectral_radius_zero",
     call(lambda w: rnn.EchoStateNetwork(N_IN, N_HIDDEN, N_OUT, spectral_radius=0)), CF,
     ValueError, ["EchoStateNetwork", "spectral_radius", "> 0", "got 0"]),
    ("esn_integer_targets",
     call(lambda w: rnn.EchoStateNetwork(N_IN, N_HIDDEN, N_OUT).loss(FLOATS, YS)), D, TypeError,
     ["esn", "float target"]),
    ("leaky_alpha_outside_the_unit_interval",
     call(lambda w: rnn.LeakyRNN(N_IN, N_HIDDEN, N_OUT, alpha=1.5)), CF, ValueError,
     ["LeakyRNN", "alpha", "strictly between 0 and 1", "1.5"]),
    ("leaky_ragged_sequences",
     call(lambda w: rnn.LeakyRNN(N_IN, N_HIDDEN, N_OUT, skip=2).loss(RAGGED, RAGGED)), E,
     ValueError, ["leaky", "ragged", "pad_sequences"]),
    ("deep_unknown_kind", call(lambda w: rnn.DeepRNN(N_IN, N_HIDDEN, N_OUT, kind="tall")), CF,
     ValueError, ["DeepRNN", "'stacked', 'mlp', 'skip'", "'tall'"]),
    ("memory_input_id_out_of_range",
     call(lambda w: rnn.MemoryNetwork(N_IN, N_HIDDEN, N_OUT).loss([0, 7, 1], YS)), B, IndexError,
     ["memory", "xs id 7", "t=2", "[0, 5)"]),
    ("recursive_tree_with_a_bad_leaf",
     call(lambda w: rnn.RecursiveNet(N_IN, N_HIDDEN, N_OUT).loss((0, (1, 9)), 1)), B, IndexError,
     ["recursive", "leaf at root.1.1", "id 9", "[0, 5)"]),
    ("recursive_tree_with_a_triple",
     call(lambda w: rnn.RecursiveNet(N_IN, N_HIDDEN, N_OUT).loss((0, (1, 2, 3)), 1)), E,
     ValueError, ["root.1", "tuple of length 3", "two trees"]),
    ("recursive_leaves_of_different_batches",
     call(lambda w: rnn.RecursiveNet(N_IN, N_HIDDEN, N_OUT).loss(([0, 1], [0, 1, 2]), [0, 1])), E,
     ValueError, ["root.1", "batch 3", "same batch"]),
]


@pytest.fixture
def world(tmp_path, monkeypatch):
    return World(tmp_path, monkeypatch)


def _assert_same(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        if value is None:
            assert after[key] is None, key
        else:
            assert after[key].dtype == value.dtype, key
            np.testing.assert_array_equal(after[key], value, err_msg=key)


@pytest.mark.parametrize("setup,error,builtin,details", [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_bad_input_is_caught_clearly_and_changes_nothing(world, setup, error, builtin, details):
    bad_call = setup(world)
    before = world.snapshot()
    with pytest.raises(error) as info:
        bad_call()
    assert isinstance(info.value, tg.TinygraphError)
    assert isinstance(info.value, builtin)
    message = str(info.value)
    for detail in details:
        assert detail in message, f"{detail!r} not in {message!r}"
    _assert_same(before, world.snapshot())
