"""What every chapter of the book does the same way.

A chapter starts the same way (the figures' style, the device, one CPU thread, a seed),
puts the numbers its prose quotes into the text with myst-nb's ``glue``, and two chapters
share their test problems (Rosenbrock's function, 2-D quadratics, the two spirals). Nothing here is an
optimizer or an idea a chapter teaches: those are written out on the pages.
"""

from __future__ import annotations

import html
import json
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


def two_spirals(n_per_class, turns, noise, generator):
    """Points on two interleaved spiral arms (classes 0 and 1), plus noise."""
    points, classes = [], []
    max_angle = 0.5 + 2 * math.pi * turns
    for c in (0, 1):
        angle = 0.5 + 2 * math.pi * turns * torch.rand(
            n_per_class, generator=generator
        )
        radius = 2.5 * angle / max_angle
        direction = torch.stack(
            [torch.cos(angle + c * math.pi), torch.sin(angle + c * math.pi)],
            dim=1,
        )
        noise_xy = noise * torch.randn(n_per_class, 2, generator=generator)
        points.append(radius[:, None] * direction + noise_xy)
        classes.append(torch.full((n_per_class,), c))
    return torch.cat(points), torch.cat(classes)


def explorable(name: str, data: dict, caption: str):
    """An explorable figure: sliders over curves this chapter computed, drawn in the reader's
    browser by the site's ``explorable.js`` (see ``book/_ext``) from ``data``, which the page
    carries as JSON. ``name`` is the figure's HTML id; ``caption`` is plain text.

    ``data`` holds ``controls`` (each a ``name``, a ``label``, its ``values`` and the
    ``initial`` index), ``panels`` (``"lines"``: ``series`` by key, each a list of
    ``{"label", "x", "y"}``, ``x`` shared when the panel gives it; ``"heatmap"``: ``x``, ``y``, ``z`` and the two controls that
    place its ``marker``) and, optionally, a ``readout`` sentence by key. A key is the
    controls' value indices joined by commas: every combination must have its series."""
    from IPython.display import HTML

    keys = [""]
    for control in data["controls"]:
        keys = [f"{k},{i}" if k else str(i) for k in keys for i in range(len(control["values"]))]
    for panel in data["panels"]:
        if panel["type"] == "lines":
            missing = set(keys) - set(panel["series"])
            if missing:
                raise ValueError(f"{name}: no series for the settings {sorted(missing)[:5]}")
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), default=_rounded)
    # "</" would end the script element early
    text = text.replace("</", "<\\/")
    return HTML(f'<figure class="explorable" id="{html.escape(name)}">'
                f'<script type="application/json">{text}</script>'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def rounded(values, digits: int = 4) -> list[float]:
    """``values`` as a list of floats to ``digits`` significant digits: what a figure
    needs, at a quarter of the JSON's size."""
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=float).ravel()]


def _rounded(value):
    if isinstance(value, np.ndarray):
        return rounded(value) if value.ndim <= 1 else [_rounded(row) for row in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")
