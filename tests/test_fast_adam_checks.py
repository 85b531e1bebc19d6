"""The measurements and models behind assignment 06's checks: the allocation probe sees
exactly the allocations of known implementations, every time, and nothing else; the
bit-exact oracle is torch's for-loop; each modelled rounding variant is told apart."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

from autograder.checks import _fast_adam
from conftest import ROOT, course_environ

N = 20_000
BYTES = N * 4


def tensors():
    gen = torch.Generator().manual_seed(0)
    p, g, m = (torch.randn(N, generator=gen) for _ in range(3))
    return p, g, m, torch.rand(N, generator=gen), torch.empty(N)


def allocation_free(p, g, m, v, scratch):
    m.lerp_(g, 0.1)
    v.mul_(0.999).addcmul_(g, g, value=0.001)
    torch.sqrt(v, out=scratch)
    scratch.div_(0.5).add_(1e-8)
    p.addcdiv_(m, scratch, value=-1e-3)


def with_temporaries(p, g, m, v, scratch):
    m.lerp_(g, 0.1)
    v.mul_(0.999).add_(0.001 * g * g)
    p.addcdiv_(m, (v.sqrt() / 0.5).add_(1e-8), value=-1e-3)


def large(allocations):
    return [entry for entry in allocations if entry[1] >= BYTES]


def test_an_allocation_free_step_allocates_nothing_of_parameter_size():
    _, seen = _fast_adam.allocations_during(allocation_free, *tensors())
    assert large(seen) == []
    assert sum(n for _, n in seen) < 1024  # at most the 0-d tensors wrapping Python scalars


def test_each_temporary_is_seen_with_the_operator_that_made_it():
    _, seen = _fast_adam.allocations_during(with_temporaries, *tensors())
    assert large(seen) == [["aten::mul", BYTES], ["aten::mul", BYTES], ["aten::sqrt", BYTES],
                           ["aten::div", BYTES]]


@pytest.mark.parametrize("options, expected", [
    (dict(foreach=False), ["aten::sqrt", "aten::div"]),  # torch's own denominator
    (dict(fused=True), []),
])
def test_torch_optimizers_allocate_what_their_code_says(options, expected):
    p = torch.zeros(N, requires_grad=True)
    p.grad = torch.ones(N)
    optimizer = torch.optim.Adam([p], **options)
    optimizer.step()  # the first step creates the state
    _, seen = _fast_adam.allocations_during(optimizer.step)
    assert [op for op, _ in large(seen)] == expected


def test_tensors_built_from_python_data_and_new_buffers_are_seen():
    values = [0.5] * N
    _, seen = _fast_adam.allocations_during(lambda: (torch.tensor(values), torch.empty_like(torch.ones(1))))
    assert [n for _, n in seen if n >= BYTES] == [BYTES]


def test_the_measurement_repeats_exactly_while_another_thread_allocates():
    arguments = tensors()
    first = _fast_adam.allocations_during(with_temporaries, *arguments)[1]
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            torch.empty(4 * N).sqrt_()

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        again = [_fast_adam.allocations_during(with_temporaries, *arguments)[1] for _ in range(20)]
    finally:
        stop.set()
        thread.join()
    assert all(seen == first for seen in again)


def test_an_exception_in_the_call_propagates_and_the_next_measurement_works():
    def fails():
        torch.empty(N)
        raise ValueError("learner")

    with pytest.raises(ValueError, match="learner"):
        _fast_adam.allocations_during(fails)
    assert large(_fast_adam.allocations_during(with_temporaries, *tensors())[1])


def test_the_measurement_writes_nothing_to_stderr():
    code = ("import torch\nfrom autograder.checks import _fast_adam\n"
            "for _ in range(3):\n    _fast_adam.allocations_during(lambda: torch.ones(1000).sqrt())\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=course_environ(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""


def problem(dtype):
    gen = torch.Generator().manual_seed(1)
    shapes = [(), (7,), (300,)]
    params = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for _ in range(8)]
    return params, grads, dict(lr=0.05, beta1=0.8, beta2=0.97, eps=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_modelled_operation_order_is_bit_for_bit_torchs_for_loop(dtype):
    params, grads, hyper = problem(dtype)
    assert _fast_adam.identical_runs(_fast_adam.ordered_run(params, grads, hyper),
                                     _fast_adam.torch_adam_run(params, grads, hyper))


@pytest.mark.parametrize("sentence", list(_fast_adam.ROUNDING))
def test_every_modelled_rounding_variant_is_told_apart_from_torch(sentence):
    params, grads, hyper = problem(torch.float32)
    reference = _fast_adam.torch_adam_run(params, grads, hyper)
    variant = _fast_adam.ordered_run(params, grads, hyper, **_fast_adam.ROUNDING[sentence])
    assert not _fast_adam.identical_runs(variant, reference)
    others = [_fast_adam.ordered_run(params, grads, hyper, **choice)
              for other, choice in _fast_adam.ROUNDING.items() if other != sentence]
    assert not any(_fast_adam.identical_runs(variant, other) for other in others)


def test_an_allocation_report_names_the_operator_and_the_fix():
    message = _fast_adam.allocation_problem([[["aten::sqrt", BYTES]]], [BYTES], what="adam_step_",
                                            limit="the parameter")
    assert "adam_step_ allocated 1 new tensor(s)" in message and "out=scratch" in message
    assert _fast_adam.allocation_problem([[["aten::mul", 8]]], [BYTES], what="x", limit="y") == ""
    chunks = _fast_adam.allocation_problem([[["aten::mul", BYTES // 2]] * 2], [BYTES], what="x", limit="y")
    assert "in 2 blocks, as much as y" in chunks
