"""Figure helpers shared by the chapters of the book.

Only styling and layout live here: a consistent look, contour plots of 2-D
functions with optimizer trajectories drawn on top, and a few small
conveniences for log-scaled convergence plots. Nothing in this module knows
about any optimizer; the chapters compute the iterates and pass them in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

#: Colour cycle used by every chapter (colour-blind friendly, Okabe & Ito).
COLORS = [
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
]

#: Width of a full-width figure, in inches, at the default DPI.
FULL_WIDTH = 9.0


def use_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a chapter)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (FULL_WIDTH, 4.0),
            "figure.dpi": 100,
            # Opaque white behind every figure, so that it reads the same on the theme's
            # dark background as on its light one.
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "savefig.transparent": False,
            "savefig.dpi": 150,
            "figure.constrained_layout.use": True,
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 10,
            "legend.framealpha": 0.9,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=COLORS),
            "lines.linewidth": 1.8,
            "image.cmap": "viridis",
        }
    )


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    height: float = 4.0,
    width: float = FULL_WIDTH,
    **kwargs,
):
    """``plt.subplots`` with the book's default width and a given height."""
    return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def contour(
    ax: plt.Axes,
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    levels: int | Sequence[float] = 20,
    log_levels: bool = False,
    resolution: int = 300,
    filled: bool = True,
) -> None:
    """Draw the level sets of ``f(X, Y)`` (a vectorised function) on ``ax``.

    With ``log_levels=True`` and an integer ``levels``, the contour values are
    spaced geometrically between the smallest positive and the largest value
    on the grid, which suits functions such as Rosenbrock's whose values span
    many orders of magnitude.
    """
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    X, Y = np.meshgrid(xs, ys)
    Z = f(X, Y)
    if log_levels:
        # a logarithmic colour scale cannot show values <= 0 (e.g. a minimum value of
        # exactly zero that falls on the grid): clip them to the smallest positive value
        smallest = Z[Z > 0].min()
        Z = np.maximum(Z, smallest)
        if isinstance(levels, int):
            levels = np.geomspace(smallest, Z.max(), levels)
    if filled:
        ax.contourf(X, Y, Z, levels=levels, alpha=0.35, cmap="viridis",
                    norm=mpl.colors.LogNorm() if log_levels else None)
    ax.contour(X, Y, Z, levels=levels, colors="0.45", linewidths=0.6)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.grid(False)


def path(
    ax: plt.Axes,
    points: np.ndarray,
    label: str | None = None,
    color: str | None = None,
    markers: bool = True,
    markersize: float = 3.0,
) -> None:
    """Draw a trajectory ``points`` of shape ``(steps, 2)``: a line through the
    iterates, a circle at the start and a square at the end."""
    points = np.asarray(points)
    (line,) = ax.plot(
        points[:, 0],
        points[:, 1],
        "-o" if markers else "-",
        color=color,
        markersize=markersize,
        linewidth=1.3,
        label=label,
    )
    c = line.get_color()
    ax.plot(*points[0], "o", color=c, markersize=7, markeredgecolor="white")
    ax.plot(*points[-1], "s", color=c, markersize=7, markeredgecolor="white")


def contour_with_paths(
    ax: plt.Axes,
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    paths: Mapping[str, np.ndarray],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    minimum: Sequence[float] | None = None,
    levels: int | Sequence[float] = 20,
    log_levels: bool = False,
    markers: bool = True,
    equal_aspect: bool = True,
    colors: Sequence[str] | None = None,
    legend: bool = True,
) -> None:
    """Contour plot of ``f`` with one trajectory per entry of ``paths``.

    ``paths`` maps a legend label to an array of iterates of shape
    ``(steps, 2)``; ``colors`` (default: the book's colour cycle) gives one
    colour per path. ``minimum``, if given, is marked with a star.
    """
    colors = COLORS if colors is None else list(colors)
    contour(ax, f, xlim, ylim, levels=levels, log_levels=log_levels)
    for i, (label, pts) in enumerate(paths.items()):
        path(ax, pts, label=label, color=colors[i % len(colors)], markers=markers)
    if minimum is not None:
        ax.plot(*minimum, "*", color="black", markersize=14, label="minimum",
                markeredgecolor="white")
    if equal_aspect:
        ax.set_aspect("equal")
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    if legend:
        ax.legend(loc="best")


def log_convergence(
    ax: plt.Axes,
    curves: Mapping[str, np.ndarray],
    ylabel: str,
    xlabel: str = "step $t$",
    styles: Mapping[str, str] | None = None,
    steps: np.ndarray | None = None,
) -> None:
    """Plot several positive sequences on a log-scaled y axis.

    The x values are ``steps`` if given (shared by all curves), else 0, 1, 2, ...
    """
    styles = styles or {}
    for label, values in curves.items():
        values = np.asarray(values)
        x = np.arange(len(values)) if steps is None else np.asarray(steps)
        ax.semilogy(x, values, styles.get(label, "-"), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")



def animate_paths(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    paths: Mapping[str, np.ndarray],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    levels: int | Sequence[float] = 12,
    minimum: Sequence[float] | None = None,
    height: float = 4.0,
    width: float = 6.5,
    frame_ms: int = 150,
    hold_ms: int = 2500,
) -> bytes:
    """An animated GIF of several trajectories drawn step by step over the level sets of
    ``f``: a plain image that a static page can show, with no widget or script.

    ``paths`` maps a legend label to iterates of shape ``(steps, 2)``; frame ``k`` shows
    the first ``k + 1`` iterates of each, and the last frame is held for ``hold_ms``.
    The level sets are drawn once and the paths blitted on top, so that rendering is fast;
    the frames share one small palette, so that the file stays light.
    """
    import io

    from PIL import Image

    fig, ax = subplots(height=height, width=width)
    contour(ax, f, xlim, ylim, levels=levels, filled=False)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    if minimum is not None:
        ax.plot(*minimum, "*", color="black", markersize=12, label="minimum")
    lines = []
    for (label, pts), color in zip(paths.items(), COLORS):
        pts = np.asarray(pts)
        ax.plot(*pts[0], "o", color=color, markersize=6)
        (line,) = ax.plot([], [], "-o", color=color, markersize=2.5, linewidth=1.2,
                          label=label, animated=True)
        lines.append((line, pts))
    ax.legend(loc="lower right", fontsize=9)
    title = ax.set_title(" ", animated=True)
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    frames = []
    for k in range(min(len(pts) for _, pts in lines)):
        fig.canvas.restore_region(background)
        for line, pts in lines:
            line.set_data(pts[: k + 1, 0], pts[: k + 1, 1])
            ax.draw_artist(line)
        title.set_text(f"step {k}")
        ax.draw_artist(title)
        frames.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()))
    plt.close(fig)
    palette = frames[-1].quantize(colors=48)  # the last frame holds every colour
    images = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=[frame_ms] * (len(images) - 1) + [hold_ms])
    return buffer.getvalue()


def line_styles(labels: Sequence[str]) -> dict[str, dict]:
    """One distinct line style per label, for figures with more curves than colours.

    The first ``len(COLORS)`` labels get the colours of the cycle with solid lines;
    later labels reuse the colours with dashed lines. Pass the same ``labels`` to every
    figure of a chapter so that a label keeps its style from figure to figure.
    """
    return {
        label: {
            "color": COLORS[i % len(COLORS)],
            "linestyle": "-" if i < len(COLORS) else "--",
        }
        for i, label in enumerate(labels)
    }


def class_regions(
    ax: plt.Axes,
    probability: Callable[[np.ndarray], np.ndarray],
    points: np.ndarray,
    classes: np.ndarray,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    resolution: int = 200,
) -> None:
    """Shade a binary classifier's regions and draw labelled points on top.

    ``probability`` maps an array of shape ``(n, 2)`` of input points to the predicted
    probability of class 1; the decision boundary (probability 1/2) is drawn as a black
    line. ``points`` of shape ``(m, 2)`` are drawn in the colour of their ``classes``
    (0 or 1).
    """
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    X, Y = np.meshgrid(xs, ys)
    P = probability(np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    cmap = mpl.colors.LinearSegmentedColormap.from_list(
        "two_classes", [COLORS[0], "white", COLORS[1]]
    )
    ax.contourf(X, Y, P, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.45)
    ax.contour(X, Y, P, levels=[0.5], colors="black", linewidths=1.2)
    for c in (0, 1):
        mask = classes == c
        ax.scatter(points[mask, 0], points[mask, 1], s=6, color=COLORS[c],
                   edgecolors="white", linewidths=0.3, label=f"class {c}")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.grid(False)


def plain_log_ticks(ax: plt.Axes, axis: str = "y") -> None:
    """Label a logarithmic axis with plain numbers (0.2, 0.3, 0.5, 1, 2, ...) at 1, 2, 3
    and 5 times the powers of ten, instead of powers of ten alone."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(mpl.ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    target.set_major_formatter(mpl.ticker.FormatStrFormatter("%g"))
    target.set_minor_formatter(mpl.ticker.NullFormatter())
