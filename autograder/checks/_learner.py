"""Probes that every part uses: one call of the learner's function with a report of what
it did to its arguments, and the facts about a learner's class.

Both run where the learner's code lives (see :mod:`autograder.probe`) and return plain
data; the checks decide from it.
"""

from __future__ import annotations

import contextlib

import torch

from autograder.feedback import call_submission, no_builtin_optimizers
from autograder.probe import probe


def _slots(args):
    """The tensors (or other values) held in each list argument, by (argument, index)."""
    return {(a, i): value for a, arg in enumerate(args) if isinstance(arg, list)
            for i, value in enumerate(arg)}


def _fact(value, before) -> dict:
    if not isinstance(value, torch.Tensor):
        return {"tensor": False, "type": type(value).__name__}
    return {
        "tensor": True,
        "replaced": before is None or value is not before[0],
        "storage_replaced": before is not None and value is before[0] and value.data_ptr() != before[1],
        "grad_fn": type(value.grad_fn).__name__ if value.grad_fn is not None else None,
        "is_leaf": bool(value.is_leaf),
        "requires_grad": bool(value.requires_grad),
    }


@probe
def call(learner, name: str, args: list, kwargs: dict | None = None, hints: dict | None = None,
         *, own_update: bool = False) -> dict:
    """Call ``learner(*args, **kwargs)`` once and report the result, every argument as it
    is afterwards, and ``facts``: for each slot ``i`` of each list argument ``a``,
    ``facts[a][i]`` says whether the slot now holds a new object (``replaced``), the
    same tensor with new storage (``storage_replaced``), its ``grad_fn`` (a name or
    None), ``is_leaf``, ``requires_grad``, and ``shares_with``: the slot ``[a2, i2]`` of
    another argument whose tensor shares its storage (a buffer that is the gradient
    itself, say). ``own_update`` forbids torch.optim's optimizers during the call."""
    kwargs = dict(kwargs or {})
    before = {key: (value, value.data_ptr()) for key, value in _slots(args).items()
              if isinstance(value, torch.Tensor)}
    guard = no_builtin_optimizers(name) if own_update else contextlib.nullcontext()
    with guard:
        result = call_submission(name, learner, *args, hints=hints or {}, **kwargs)
    after = _slots(args)
    storage = {}
    for key, value in after.items():
        if isinstance(value, torch.Tensor) and value.numel():
            storage.setdefault(value.data_ptr(), []).append(key)
    facts = [None if not isinstance(arg, list) else [] for arg in args]
    for (a, i), value in after.items():
        fact = _fact(value, before.get((a, i)))
        if fact["tensor"]:
            others = [k for k in storage.get(value.data_ptr(), []) if k[0] != a] if value.numel() else []
            fact["shares_with"] = list(others[0]) if others else None
        facts[a].append(fact)
    return {"result": result, "args": list(args), "kwargs": kwargs, "facts": facts}


@probe
def class_facts(learner) -> dict:
    """Whether the learner's object is a class and, if so, its bases in method resolution
    order: each one's module, qualified name and, for classes not from torch, the names
    it defines itself."""
    if not isinstance(learner, type):
        return {"is_class": False, "type": type(learner).__name__, "mro": []}
    bases = []
    for base in learner.__mro__:
        module = str(getattr(base, "__module__", ""))
        own = [] if module.split(".")[0] == "torch" or base is object else sorted(
            str(k) for k in vars(base) if isinstance(k, str))[:500]
        bases.append({"module": module, "qualname": str(base.__qualname__), "defines": own})
    return {"is_class": True, "type": "type", "mro": bases}


def derives_from(facts: dict, cls: type) -> bool:
    """Whether the class that :func:`class_facts` described derives from ``cls``."""
    return any(b["module"] == cls.__module__ and b["qualname"] == cls.__qualname__ for b in facts["mro"])
