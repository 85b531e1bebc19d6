"""The plain data a probe sends back: exact round trips for what checks need, nothing of
a learner's objects survives the trip, and a malformed message is refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from autograder import oracles, wire
from autograder.probe import Local, probe, rebuild_error
from autograder.feedback import Mismatch, SubmissionError


def trip(value):
    return wire.decode(json.loads(json.dumps(wire.encode(value), allow_nan=False)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
                                   torch.bool])
def test_tensors_cross_bit_for_bit(dtype):
    value = (torch.randn(3, 4, dtype=torch.float64) * 1e3).to(dtype)
    back = trip(value)
    assert back.dtype == dtype and back.shape == value.shape and torch.equal(back, value)


def test_numbers_and_containers_keep_their_types_and_values():
    value = {"a": [1, 2.5, (3, None)], 4: float("nan"), "inf": -math.inf, "s": "text", "t": torch.Size([2, 3]),
             "dtype": torch.float32, "device": torch.device("cpu"), "empty": torch.zeros(0, 5)}
    back = trip(value)
    assert back["a"] == [1, 2.5, (3, None)] and math.isnan(back[4]) and back["inf"] == -math.inf
    assert back["t"] == (2, 3) and back["dtype"] is torch.float32 and back["device"] == torch.device("cpu")
    assert back["empty"].shape == (0, 5)


def test_a_scheduled_run_crosses_as_a_record():
    schedule = oracles.make_schedule(0, torch.float32, "cpu", steps=4)
    back = trip(schedule)
    assert isinstance(back, oracles.Schedule) and back.lr_changes == schedule.lr_changes
    assert all(torch.equal(a, b) for a, b in zip(back.initial[0], schedule.initial[0]))


def test_nothing_of_a_learners_object_survives():
    class Always:
        def __eq__(self, other):
            return True

        def __float__(self):
            return 1.0

    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True

    class Sneaky(list):
        def __iter__(self):
            return iter([1, 2, 3])

    back = trip([Always(), torch.arange(3.0).as_subclass(Liar), Sneaky([9]), np.float32(2.5), np.arange(2)])
    opaque, tensor, sneaky, number, array = back
    assert isinstance(opaque, wire.Opaque) and opaque != opaque and not (opaque == 1)
    with pytest.raises(TypeError):
        float(opaque)
    assert type(tensor) is torch.Tensor and torch.equal(tensor, torch.arange(3.0))
    assert sneaky == [9] and number == 2.5 and array == [0, 1]


@pytest.mark.parametrize("message", [
    {"tensor": {"dtype": "float32", "shape": [3], "device": "cpu", "requires_grad": False, "data": "AAAA"}},
    {"tensor": {"dtype": "object", "shape": [1], "device": "cpu", "requires_grad": False, "data": ""}},
    {"tensor": {"dtype": "float32", "shape": [-1], "device": "cpu", "requires_grad": False, "data": ""}},
    {"tuple": "not a list"},
    {"record": ["os.system", {}]},
    {"float": "1.0"},
    {"unknown": 1},
    1e400,
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
])
def test_a_malformed_message_is_refused(message):
    with pytest.raises(wire.WireError):
        wire.decode(message)


def test_too_much_data_is_refused():
    with pytest.raises(wire.WireError, match="MiB"):
        wire.encode([torch.zeros(2**25, dtype=torch.float64)] * 2)


@probe
def doubled(learner, values):
    values.append(learner(values[0]))
    return values


def test_a_probe_works_on_copies_and_returns_plain_data():
    given = [torch.ones(2)]
    seen = doubled(Local(lambda t: t.mul_(2)), given)
    assert torch.equal(given[0], torch.ones(2))  # the check's own data is untouched
    assert torch.equal(seen[1], torch.full((2,), 2.0))


def test_a_probes_errors_keep_their_kind():
    assert isinstance(rebuild_error({"type": "Mismatch", "message": "m"}), Mismatch)
    assert isinstance(rebuild_error({"type": "SubmissionError", "message": "s"}), SubmissionError)
    other = rebuild_error({"type": "ValueError", "message": "v"})
    assert type(other).__name__ == "ValueError" and not isinstance(other, (ValueError, Mismatch))
    assert isinstance(rebuild_error({"type": "x y", "message": 3}), SubmissionError)
