"""The course's fast Adam steps (book/fast_adam.py) compute torch.optim.Adam's update, the
clock times every function in turns, and the benchmark script runs end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from autograder import oracles
from conftest import ROOT, course_environ

sys.path.insert(0, str(ROOT / "book"))
import fast_adam  # noqa: E402

HYPER = dict(lr=0.05, beta1=0.8, beta2=0.97, eps=1e-3)
SHAPES = [(), (7,), (5, 3), (300,)]


def problem(dtype, steps=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    initial = [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES] for _ in range(steps)]
    return initial, grads


def torch_adam(initial, grads):
    """The parameters after every step of torch.optim.Adam(foreach=False)."""
    schedule = oracles.Schedule([initial], [HYPER["lr"]], [[g] for g in grads], {})
    return oracles.replay(lambda groups: torch.optim.Adam(
        groups, betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"], foreach=False), schedule)


def hyper():
    return HYPER["lr"], HYPER["beta1"], HYPER["beta2"], HYPER["eps"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_adam_is_bit_for_bit_torchs_for_loop(dtype):
    initial, grads = problem(dtype)
    params = [p.clone() for p in initial]
    ms, vs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    scratch = [torch.full_like(p, float("nan")) for p in params]
    for t, (step_grads, expected) in enumerate(zip(grads, torch_adam(initial, grads)), start=1):
        fast_adam.foreach_adam_(params, step_grads, ms, vs, scratch, t, *hyper())
        assert all(torch.equal(p, e) for p, e in zip(params, expected)), f"step {t}"


def test_the_textbook_step_out_of_place_matches_torch_to_rounding():
    initial, grads = problem(torch.float64)
    state = [[p.clone(), torch.zeros_like(p), torch.zeros_like(p)] for p in initial]
    for t, (step_grads, expected) in enumerate(zip(grads, torch_adam(initial, grads)), start=1):
        for entry, g in zip(state, step_grads):
            entry[0], entry[1], entry[2] = fast_adam.adam_out_of_place(entry[0], g, entry[1], entry[2], t,
                                                                       *hyper())
        for (p, _, _), e in zip(state, expected):
            torch.testing.assert_close(p, e, rtol=1e-12, atol=1e-14)


def run_flat(initial, grads, **options):
    params = [p.clone().requires_grad_() for p in initial]
    optimizer = fast_adam.FlatAdam(params, lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]),
                                   eps=HYPER["eps"], **options)
    history = []
    for step, step_grads in enumerate(grads):
        optimizer.zero_grad()
        for p, g in zip(params, step_grads):
            if step % 2:
                p.grad.add_(g)  # as backward() accumulates into the view
            else:
                p.grad = g.clone()  # a gradient set by hand is brought into the buffer
        optimizer.step()
        history.append([p.detach().clone() for p in params])
    return params, optimizer, history


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flat_adam_with_the_eager_kernel_matches_torch(dtype):
    initial, grads = problem(dtype)
    params, optimizer, history = run_flat(initial, grads, compiled=False)
    for seen, expected in zip(history, torch_adam(initial, grads)):
        for p, e in zip(seen, expected):
            torch.testing.assert_close(p, e)
    flat = optimizer.flat.untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == flat for p in params)
    assert all(p.grad is view for p, view in zip(params, optimizer.grads))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile imports deprecated torch.jit
def test_the_compiled_step_and_flat_adam_match_torch_to_rounding():
    initial, grads = problem(torch.float32)
    expected = torch_adam(initial, grads)
    params = [p.clone() for p in initial]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    for t, step_grads in enumerate(grads, start=1):
        for p, g, (m, v) in zip(params, step_grads, moments):
            fast_adam.compiled_step(p, g, m, v, t, *hyper())
    for p, e in zip(params, expected[-1]):
        torch.testing.assert_close(p, e, rtol=1e-5, atol=1e-6)
    _, _, history = run_flat(initial, grads)
    for p, e in zip(history[-1], expected[-1]):
        torch.testing.assert_close(p, e, rtol=1e-5, atol=1e-6)


def test_the_exercise_reference_runs_from_its_notebook_and_is_torchs_bits():
    exercise = fast_adam.exercise_reference()
    initial, grads = problem(torch.float32, steps=4)
    params = [p.clone().requires_grad_() for p in initial]
    optimizer = exercise["FastAdam"](params, lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]),
                                     eps=HYPER["eps"])
    for step_grads, expected in zip(grads, torch_adam(initial, grads)):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()
        assert all(torch.equal(p.detach(), e) for p, e in zip(params, expected))


def test_seconds_per_call_takes_turns_and_keeps_each_functions_fastest_round():
    calls = []
    seconds = fast_adam.seconds_per_call({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                         rounds=3, calls=2, warmup=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    assert set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())


def test_the_minimal_traffic_is_seven_tensors():
    assert fast_adam.minimal_bytes(1) == 28
    assert fast_adam.minimal_bytes(10, torch.float64) == 560


@pytest.mark.slow
def test_the_benchmark_prints_its_table_on_tiny_sizes():
    # The grading benchmark runs commands the grading tests run already (nbgrader
    # autograde, python -m autograder.batch): here only the Adam and book benchmarks.
    result = subprocess.run([sys.executable, str(ROOT / "bench.py"), "--tiny", "--only", "adam,book"], cwd=ROOT,
                            env=course_environ(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| benchmark | what | time |")
    benchmarks = {line.split("|")[1].strip() for line in table[2:]}
    assert {"Adam, 1 tensor of 16,384", "Adam, 20 tensors of 64", "Book (tiny test book)"} <= benchmarks
    assert "Machine:" in result.stdout
