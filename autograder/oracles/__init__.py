"""What a correct answer is, computed independently of any solution notebook.

Two kinds of oracle: float64 transcriptions of the equations as the course states them,
one module per idea (:mod:`.gd`, and one per later chapter), and ``torch.optim`` itself,
driven through :mod:`.replay` so that a learner's optimizer and PyTorch's see exactly
the same parameters, gradients and learning-rate changes.
"""

from .gd import (
    gd_least_squares,
    gd_update,
    mse_and_grad,
    mse_hessian_eigenvalues,
    optimal_step_and_rate,
    sgd_equation,
)
from .replay import Schedule, first_divergence, is_finite_number, make_schedule, random_shape, replay

__all__ = [
    "Schedule", "first_divergence", "gd_least_squares", "gd_update", "is_finite_number",
    "make_schedule", "mse_and_grad", "mse_hessian_eigenvalues", "optimal_step_and_rate",
    "random_shape", "replay", "sgd_equation",
]
