"""What every chapter of the book does the same way.

A chapter starts the same way (the figures' style, the device, one CPU thread, a seed),
puts the numbers its prose quotes into the text with myst-nb's ``glue``, and two chapters
share their test problems (Rosenbrock's function, 2-D quadratics). Nothing here is an
optimizer or an idea a chapter teaches: those are written out on the pages.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from myst_nb import glue

import plotting


def start(threads: int | None = 1, seed: int | None = 0) -> str:
    """The chapter's opening: the figures' style, one CPU thread (every tensor in the
    chapters is tiny, and one thread is fastest), a seeded generator. ``None`` leaves a
    setting alone. Returns the device the chapter computes on: ``cuda`` when there is
    one, else ``cpu``."""
    plotting.use_style()
    if threads is not None:
        torch.set_num_threads(threads)
    if seed is not None:
        torch.manual_seed(seed)
    return "cuda" if torch.cuda.is_available() else "cpu"


def glue_num(name: str, value) -> None:
    """Store a number for use in the text (as a plain Python int or float)."""
    if isinstance(value, (int, np.integer)):
        glue(name, int(value), display=False)
    else:
        glue(name, float(value), display=False)


def glue_text(name: str, text: str) -> None:
    """Store a string for use in the text."""
    glue(name, text, display=False)


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def superscript(exponent: int) -> str:
    """An integer in superscript digits, such as ⁻⁶."""
    return str(exponent).translate(SUPERSCRIPT)


def glue_sci(name: str, value: float, digits: int = 2) -> None:
    """Store a number in scientific notation (such as 1.2×10⁻⁶) for the text."""
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    power = "10" + superscript(int(exponent))
    glue_text(name, power if float(mantissa) == 1.0 else f"{mantissa}×{power}")


def glue_power(name: str, value: float, base: int = 10) -> None:
    """Store an exact power of ``base``, such as 10⁻⁸ or 2²⁴, for the text."""
    exponent = round(math.log(value, base))
    if not math.isclose(value, float(base) ** exponent):
        raise ValueError(f"{value} is not a power of {base}")
    glue_text(name, f"{base}{superscript(exponent)}")


def rosenbrock(x, y):
    """Rosenbrock's function, for floats, NumPy arrays and torch tensors."""
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def rosenbrock_grad(theta):
    """Gradient of Rosenbrock's function, derived by hand."""
    x, y = theta
    return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


def rosenbrock_hessian(theta):
    """Hessian of Rosenbrock's function, derived by hand."""
    x, y = theta
    return np.array([[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200.0]])


def rotation(angle: float):
    """The 2-D rotation by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def spd_matrix(lam_min: float, lam_max: float, angle: float = math.pi / 6):
    """A 2x2 symmetric positive definite matrix with the given eigenvalues, its
    eigenvectors rotated by ``angle`` off the coordinate axes."""
    Q = rotation(angle)
    return Q @ np.diag([lam_min, lam_max]) @ Q.T
