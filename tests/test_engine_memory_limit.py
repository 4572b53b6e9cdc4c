"""A result too large for the machine is refused before it is allocated, with an
AllocationError (a MemoryError) naming the op, the shapes and the size in GiB -- never a bare
numpy MemoryError, and never an attempt that pushes the machine into swap or the OOM killer.

The rule (``tg.memory_limit()``): no single result may exceed this machine's physical memory.
The sizes below (terabytes) exceed any machine's."""

import numpy as np
import pytest

import tinygraph as tg

HUGE = 10 ** 6          # a (HUGE, HUGE) float64 result is 7,451 GiB


@pytest.mark.parametrize("name, make, op", [
    ("zeros", lambda: tg.zeros((HUGE, HUGE)), "zeros"),
    ("ones", lambda: tg.ones((HUGE, HUGE)), "ones"),
    ("full", lambda: tg.full((HUGE, HUGE), 2.0), "full"),
    ("eye", lambda: tg.eye(HUGE), "eye"),
    ("randn", lambda: tg.randn(HUGE, HUGE, seed=0), "randn"),
    ("rand", lambda: tg.rand((HUGE, HUGE), seed=0), "rand"),
    ("outer product by matmul", lambda: tg.tensor(np.ones((HUGE, 1))) @ tg.tensor(np.ones((1, HUGE))), "matmul"),
    ("batched matmul", lambda: tg.matmul(tg.tensor(np.ones((HUGE, 1, 1))), tg.tensor(np.ones((1, HUGE)))),
     "matmul"),
    ("addmm", lambda: tg.addmm(tg.tensor(0.0), tg.tensor(np.ones((HUGE, 1))), tg.tensor(np.ones((1, HUGE)))),
     "matmul"),
    ("broadcasting add", lambda: tg.tensor(np.ones((HUGE, 1))) + np.ones(HUGE), "add"),
    ("broadcasting mul", lambda: tg.tensor(np.ones((HUGE, 1)), requires_grad=True) * np.ones(HUGE), "mul"),
    ("broadcasting where", lambda: tg.where(np.ones((HUGE, 1), bool), tg.tensor(np.ones(HUGE)), 0.0), "where"),
    ("one_hot", lambda: tg.one_hot(np.zeros(HUGE, int), HUGE), "one_hot"),
    ("numpy interop", lambda: np.maximum(tg.tensor(np.ones((HUGE, 1))), np.ones(HUGE)), "maximum"),
])
def test_a_result_larger_than_memory_raises_naming_the_op_shapes_and_size(name, make, op):
    with pytest.raises(tg.AllocationError, match=rf"^{op}: .*\({HUGE}, (1, )?{HUGE}\).*7450\.6 GiB") as info:
        make()
    assert isinstance(info.value, MemoryError)


def test_the_error_names_the_time_step_inside_a_scope():
    with tg.scope("t=3"), pytest.raises(tg.AllocationError, match="in scope 't=3'"):
        tg.tensor(np.ones((HUGE, 1))) - tg.tensor(np.ones(HUGE))


def test_the_limit_is_this_machines_physical_memory():
    limit = tg.memory_limit()
    assert limit is None or 2 ** 26 < limit < 2 ** 60


def test_a_memory_error_inside_an_op_becomes_an_allocation_error_naming_the_op():
    def forward(a):
        raise MemoryError("the allocator refused")
    with pytest.raises(tg.AllocationError, match=r"^grow: out of memory .*input shapes \(2,\)"):
        tg.apply("grow", forward, tg.tensor([1.0, 2.0]))


def test_results_below_the_limit_are_made_as_before():
    assert tg.zeros((3, 4)).shape == (3, 4)
    assert (tg.tensor(np.ones((3, 1))) @ tg.tensor(np.ones((1, 5)))).shape == (3, 5)
    assert (tg.tensor(np.ones((3, 1))) + np.ones(4)).shape == (3, 4)


def test_a_view_that_broadcasts_past_the_limit_is_not_refused_because_it_allocates_nothing():
    x = tg.tensor(2.0, requires_grad=True)
    big = tg.broadcast_to(x, (HUGE, HUGE))
    assert big.shape == (HUGE, HUGE) and big.data.strides == (0, 0)


def test_arange_longer_than_memory_raises_naming_its_length_and_size():
    with pytest.raises(tg.AllocationError, match=r"^arange: .*\(10000000000000,\).*74505\.8 GiB"):
        tg.arange(1e13)


@pytest.mark.parametrize("make, error, message", [
    (lambda: tg.zeros(-1), tg.ShapeError, "zeros: negative dimensions"),
    (lambda: tg.randn(2, -3), tg.ShapeError, "randn: negative dimensions"),
    (lambda: tg.ones((2, "a")), tg.DTypeError, "ones: "),
    (lambda: tg.zeros((2, 2), dtype="foo"), tg.DTypeError, "zeros: data type 'foo'"),
])
def test_constructors_name_themselves_in_errors_for_bad_shapes_and_dtypes(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("make, op", [
    (lambda: tg.tile(tg.tensor(np.ones((1000, 1000)), requires_grad=True), (1000, 1000)), "tile"),
    (lambda: tg.tensor(np.ones((1000, 1000))).repeat(1000, 1000), "repeat"),
    (lambda: tg.pad(tg.tensor(np.ones(2)), HUGE ** 2), "pad"),
])
def test_repeating_ops_refuse_a_result_larger_than_memory_naming_themselves(make, op):
    with pytest.raises(tg.AllocationError, match=rf"^{op}: the result of shape .* GiB"):
        make()
