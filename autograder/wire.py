"""The plain data that crosses from a learner's code to the checks.

A probe (:mod:`autograder.probe`) runs where the learner's code lives and returns what it
observed; the checks judge only that. Whatever the probe returns is turned into plain
JSON-ready data here (:func:`encode`) and rebuilt on the judging side (:func:`decode`):
numbers, strings, lists, tuples, dicts, tensors (dtype, shape, device and exact bytes),
dtypes, devices, and the few dataclasses registered with :func:`record` (a scripted run). Anything else arrives as an :class:`Opaque` stand-in that equals
nothing and is no number, so an object whose comparisons always succeed, a tensor
subclass that lies, or a value that cannot be carried can never pass a check.

:func:`decode` trusts nothing: it accepts only the shapes :func:`encode` produces, within
size and depth limits, and raises :class:`WireError` for anything else.
"""

from __future__ import annotations

import base64
import dataclasses
import math

import torch

#: The dtypes a tensor may have on the wire.
DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
              torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
              torch.complex64, torch.complex128)
}
MAX_DEPTH = 32
MAX_BYTES = 256 * 2**20  # tensor bytes in one message
MAX_STRING = 100_000


#: Dataclasses of plain fields that may cross as records (:func:`record`).
RECORDS: dict[str, type] = {}


def record(cls):
    """Let instances of dataclass ``cls`` cross as records of their fields (a decorator)."""
    RECORDS[cls.__qualname__] = cls
    return cls


class WireError(ValueError):
    """A value that cannot be carried, or a message that is not what :func:`encode` makes."""


class Opaque:
    """What arrives in place of a value that is not plain data: it keeps the type's name
    and a short repr for messages, equals nothing (itself included), and is no number."""

    __slots__ = ("type_name", "text")

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other) -> bool:
        return False

    def __ne__(self, other) -> bool:
        return True

    __hash__ = None


def _type_name(value) -> str:
    try:
        return str(type(value).__name__)[:80]
    except Exception:  # a hostile metaclass
        return "object"


def _safe_repr(value, limit: int = 200) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{_type_name(value)} object>"
    text = str(text) if isinstance(text, str) else f"<{_type_name(value)} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _float(value: float):
    return value if math.isfinite(value) else {"float": repr(value)}


def _tensor(value: torch.Tensor, budget: list[int]) -> dict:
    # A subclass's __torch_function__ is switched off before anything is read.
    with torch._C.DisableTorchFunctionSubclass():
        requires_grad = bool(value.requires_grad)
        plain = torch.Tensor.as_subclass(value, torch.Tensor).detach()
    name = str(plain.dtype).removeprefix("torch.")
    if name not in DTYPES:
        return {"opaque": "Tensor", "repr": f"a tensor of dtype {name}"}
    budget[0] += plain.numel() * plain.element_size()
    if budget[0] > MAX_BYTES:
        raise WireError(f"more than {MAX_BYTES // 2**20} MiB of tensor data")
    flat = plain.to("cpu").contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return {"tensor": {
        "dtype": name,
        "shape": list(plain.shape),
        "device": str(plain.device),
        "requires_grad": requires_grad,
        "data": base64.b64encode(data).decode("ascii"),
    }}


def encode(value, *, _depth: int = 0, _budget: list[int] | None = None):
    """``value`` as JSON-ready data (raises :class:`WireError` when it is too large).

    Subclasses of the built-in types are read through the built-in type's own methods,
    so an override (an ``__eq__`` that always agrees, an ``__iter__`` that lies) is never
    called; NumPy scalars and arrays become Python numbers and lists.
    """
    budget = [0] if _budget is None else _budget
    if _depth > MAX_DEPTH:
        raise WireError(f"nested more than {MAX_DEPTH} levels deep")

    def inner(v):
        return encode(v, _depth=_depth + 1, _budget=budget)

    if value is None or value is True or value is False:
        return value
    if isinstance(value, bool):
        return bool(int.__int__(value))
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return _float(float.__float__(value))
    if isinstance(value, str):
        text = str.__str__(value)
        return text if len(text) <= MAX_STRING else text[:MAX_STRING]
    if isinstance(value, list):
        return [inner(list.__getitem__(value, i)) for i in range(list.__len__(value))]
    if isinstance(value, tuple):
        return {"tuple": [inner(tuple.__getitem__(value, i)) for i in range(tuple.__len__(value))]}
    if isinstance(value, dict):
        return {"dict": [[inner(k), inner(dict.__getitem__(value, k))] for k in list(dict.__iter__(value))]}
    if isinstance(value, torch.Tensor):
        return _tensor(value, budget)
    if RECORDS.get(type(value).__qualname__) is type(value):
        fields = {f.name: inner(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"record": [type(value).__qualname__, fields]}
    if type(value) is torch.dtype:
        return {"dtype": str(value).removeprefix("torch.")}
    if type(value) is torch.device:
        return {"device": str(value)}
    numpy = _numpy_value(value)
    if numpy is not None:
        return inner(numpy[0])
    return {"opaque": _type_name(value), "repr": _safe_repr(value)}


def _numpy_value(value):
    """A NumPy scalar or array as a 1-tuple of its Python value, else None."""
    try:
        import numpy as np
    except ImportError:
        return None
    if type(value) is np.ndarray or isinstance(type(value), type) and type(value).__module__ == "numpy" \
            and isinstance(value, np.generic):
        return (value.tolist(),)
    return None


def _cuda_ok(device: str) -> bool:
    return device.startswith("cuda") and torch.cuda.is_available()


def _decode_tensor(spec, budget: list[int]) -> torch.Tensor:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "device", "requires_grad", "data"}:
        raise WireError("a malformed tensor")
    dtype = DTYPES.get(spec["dtype"]) if isinstance(spec["dtype"], str) else None
    shape = spec["shape"]
    if dtype is None or not isinstance(shape, list) or not all(type(n) is int and 0 <= n for n in shape) \
            or len(shape) > 16 or not isinstance(spec["data"], str) or not isinstance(spec["device"], str):
        raise WireError("a malformed tensor")
    count = math.prod(shape)
    size = count * torch.empty((), dtype=dtype).element_size()
    budget[0] += size
    if budget[0] > MAX_BYTES:
        raise WireError(f"more than {MAX_BYTES // 2**20} MiB of tensor data")
    try:
        data = base64.b64decode(spec["data"].encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise WireError("a malformed tensor") from None
    if len(data) != size:
        raise WireError("a tensor whose data does not match its shape")
    tensor = torch.frombuffer(bytearray(data), dtype=dtype) if count else torch.empty(0, dtype=dtype)
    tensor = tensor.reshape(shape)
    if _cuda_ok(spec["device"]):
        tensor = tensor.to(spec["device"])
    if spec["requires_grad"] is True and (dtype.is_floating_point or dtype.is_complex):
        tensor.requires_grad_()
    return tensor


def decode(data, *, _depth: int = 0, _budget: list[int] | None = None):
    """The value :func:`encode` made ``data`` from (raises :class:`WireError` otherwise)."""
    budget = [0] if _budget is None else _budget
    if _depth > MAX_DEPTH:
        raise WireError(f"nested more than {MAX_DEPTH} levels deep")

    def inner(v):
        return decode(v, _depth=_depth + 1, _budget=budget)

    kind = type(data)
    if data is None or kind is bool or kind is int:
        return data
    if kind is float:
        if not math.isfinite(data):
            raise WireError("a bare non-finite number")
        return data
    if kind is str:
        if len(data) > MAX_STRING:
            raise WireError("a string that is too long")
        return data
    if kind is list:
        return [inner(v) for v in data]
    if kind is not dict or len(data) not in (1, 2):
        raise WireError(f"unexpected {_type_name(data)}")
    if set(data) == {"opaque", "repr"}:
        if not (isinstance(data["opaque"], str) and isinstance(data["repr"], str)):
            raise WireError("a malformed opaque value")
        return Opaque(data["opaque"][:80], data["repr"][:200])
    (tag, body), = data.items() if len(data) == 1 else ((None, None),)
    if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "tuple" and isinstance(body, list):
        return tuple(inner(v) for v in body)
    if tag == "dict" and isinstance(body, list):
        result = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise WireError("a malformed dict")
            key = inner(pair[0])
            try:
                result[key] = inner(pair[1])
            except TypeError:
                raise WireError("a dict key that cannot be hashed") from None
        return result
    if tag == "tensor":
        return _decode_tensor(body, budget)
    if tag == "record" and isinstance(body, list) and len(body) == 2 and body[0] in RECORDS \
            and isinstance(body[1], dict):
        cls = RECORDS[body[0]]
        names = {f.name for f in dataclasses.fields(cls)}
        if set(body[1]) != names:
            raise WireError(f"a malformed {body[0]}")
        return cls(**{k: inner(v) for k, v in body[1].items()})
    if tag == "dtype" and isinstance(body, str) and body in DTYPES:
        return DTYPES[body]
    if tag == "device" and isinstance(body, str):
        try:
            device = torch.device(body)
        except RuntimeError:
            raise WireError("a malformed device") from None
        return device
    raise WireError(f"unexpected tag {str(tag)[:40]!r}")


def roundtrip(value):
    """``decode(encode(value))``: a copy of ``value`` as plain data, as a judge sees it."""
    return decode(encode(value))
