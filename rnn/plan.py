"""The plan of an unroll: what each step reads, carries and batches, apart from how the steps
are run.

:meth:`rnn.core.Cell.unroll` takes a :class:`Plan` and runs it with one of three executors:
per step (every op of every step a node of its scope: what ``run`` and the diagrams use),
batched over time (only the recurrence stays in the loop: what ``loss`` and training use),
and, inside the batched one, replayed (:mod:`rnn.replay`: one recorded step run again for the
later steps).
"""

import dataclasses


@dataclasses.dataclass(eq=False)   # not frozen: its __init__ would cost three times as much
class Plan:
    """One unroll of a cell, its arguments already checked.

    Attributes
    ----------
    seq : dict name -> array or Tensor (T, ...), the inputs read at every step (or, per step,
        a list of T Tensors used as they are: one leaf read by several chains)
    steps : int
    state0 : dict part -> array or Tensor, the state before step 1
    ys : int array (T,) / (T, B) (or () / (B,) with ``outputs = "last"``), optional
    keep : bool (T, B) mask or None
    batch : B or None (unbatched)
    static : dict name -> array or Tensor, inputs that are the same at every step
    y0 : the feedback before step 1 (designs with ``feedback``), a node named ``y0_name``
    free : (input name, fn) or None: that input of step t+1 is ``fn(o(t))`` (running free,
        sampling); without it the feedback input is the previous target (teacher forcing)
    reverse : bool
        Run backward in time, t = T..1, each step still in the scope of its real step t
        (state0 is the state after step T; ``parts`` and ``last`` are in time order and at
        t = 1).  Only for a cell without feedback and with an output at every step.
    past : list of ``max(lags)`` dicts part -> array or Tensor, the states before the first
        step, oldest first (designs with ``lags``; default: the state before step 1)
    classes : the number of classes the ids ``ys`` were checked against (every kept one in
        [0, classes)), or None: a readout of that many classes needs no check of its own
    """

    seq: dict
    steps: int
    state0: dict = None
    ys: object = None
    keep: object = None
    batch: int = None
    static: dict = None
    y0: object = None
    free: tuple = None
    y0_name: str = "y"
    reverse: bool = False
    past: list = None
    classes: int = None

    @property
    def order(self):
        """The steps in the order they run: 1..T, or T..1 backward in time."""
        return range(self.steps, 0, -1) if self.reverse else range(1, self.steps + 1)

    @property
    def first(self):
        """The step run first."""
        return self.steps if self.reverse else 1
