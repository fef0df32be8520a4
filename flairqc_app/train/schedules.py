"""The two schedules of the paper, both functions of the true training progress p in [0, 1].

p = iteration / total_iterations over the whole phase (not epoch / 10, a bug of the public code).
"""

from __future__ import annotations

import math


def progress(iteration: int, total_iterations: int) -> float:
    return min(1.0, iteration / max(1, total_iterations))


def grl_lambda(p: float, gamma: float = 10.0) -> float:
    """Eq. 2: lambda = 2 / (1 + exp(-gamma p)) - 1, from 0 at p = 0 towards 1 (0.9866 at p = 1, gamma 10)."""
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def learning_rate(p: float, lr0: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """Eq. 3: mu_p = mu_0 / (1 + alpha p)^beta."""
    return lr0 / (1.0 + alpha * p) ** beta
