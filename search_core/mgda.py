"""MGDA weights (section II-A, eq. (1); section III-D, eq. (10)): the min-norm point of the hull.

The upper level of E2RNAS has several objectives L_1..L_n of the architecture α. MGDA finds a
common descent direction by solving eq. (1),

    min_γ ||Σ_i γ_i ∇L_i||²   s.t.  γ_i ≥ 0,  Σ_i γ_i = 1,

and eq. (10) then steps α along -∇(Σ_i γ_i L_i). With the gradients as the rows of G (n × d)
and the Gram matrix M = G Gᵀ, eq. (1) is the quadratic f(γ) = γᵀMγ on the simplex, so the
solver works on M alone (n × n, computed once in float64 where the device has it) and never
touches the d-dimensional gradients again.

The paper solves eq. (1) by Frank-Wolfe [17]; this module uses its away-step variant, which
converges linearly on the simplex where plain Frank-Wolfe only converges as O(1/t) (and
zig-zags when the minimiser lies on a face). Each iteration, with u = Gᵀγ the current combined
gradient, so that (Mγ)_i = g_i·u and f(γ) = ||u||²:

* the Frank-Wolfe vertex s = argmin_i (Mγ)_i, direction e_s - γ, longest step 1;
* the away vertex a = argmax_{i: γ_i > 0} (Mγ)_i, direction γ - e_a, longest step γ_a/(1-γ_a);
* whichever direction has the larger gap is taken with exact line search: f is quadratic
  along it, so the step is -⟨δ, Mγ⟩ / δᵀMδ clipped to [0, longest step]. An away step that
  reaches its longest step drops a from the support.

The iteration starts from the best single objective, the vertex with the smallest ||g_i||².
For n = 2 the first Frank-Wolfe step is then exactly the two-objective closed form
γ_1 = clip(((g_2 - g_1)·g_2) / ||g_1 - g_2||², 0, 1).

The stopping test is the Frank-Wolfe duality gap ||u||² - min_i g_i·u ≤ tol · max_i ||g_i||².
Twice the gap bounds f(γ) - min f, and min_i g_i·u = ||u||² exactly at the min-norm point,
the defining property of the min-norm element of the convex hull. The tolerance is relative to
the largest squared gradient norm because the minimiser of eq. (1) does not change when G is
scaled; an absolute tolerance would stop at once on small gradients.

On an accelerator nothing here synchronises with the host, so a search step never waits for
the solver: the loop always runs max_iter iterations and, once the gap is below the
tolerance, keeps the iterate unchanged (a masked update), which returns what an early-stopped
run would return. Only shapes and dtypes, which are host metadata, are checked. On the CPU
the host is the device: the same iteration runs on the n × n Gram matrix in Python floats
and stops at the gap test, since 250 masked iterations of a dozen tensor operations each cost
time for nothing (``bench/step_cost.py`` times both). The two agree to rounding in γᵀG; where
two gradients are equal, the weight may split between them differently.
"""

from __future__ import annotations

import torch

from search_core.errors import ConfigError

NORMALIZATIONS: tuple[str, ...] = ("l2", "loss", "none")
"""The accepted values of ``mgda_normalization``."""

_NORM_FLOOR = 1e-12
"""Smallest divisor when normalising, so that a zero gradient or a zero loss stays finite."""


def _check_grads(grads: torch.Tensor, name: str = "grads") -> None:
    if not isinstance(grads, torch.Tensor):
        raise ConfigError(f"{name}: expected a torch.Tensor of shape (n, d), got {type(grads)}")
    if grads.ndim != 2 or grads.shape[0] < 1:
        raise ConfigError(
            f"{name}: expected a 2-D tensor of shape (n, d) with n >= 1, "
            f"got shape {tuple(grads.shape)}"
        )
    if not grads.is_floating_point():
        raise ConfigError(f"{name}: expected a floating-point tensor, got dtype {grads.dtype}")


def _work_dtype(device: torch.device) -> torch.dtype:
    # MPS has no float64; everywhere else the Gram matrix is worth the extra precision.
    return torch.float32 if device.type == "mps" else torch.float64


def _away_step_frank_wolfe(gram: torch.Tensor, max_iter: int, tol: float) -> torch.Tensor:
    """Minimise γᵀ gram γ on the simplex; see the module docstring for the iteration."""
    n = gram.shape[0]
    dtype = gram.dtype
    tiny = torch.finfo(dtype).tiny
    index = torch.arange(n, device=gram.device)
    diagonal = torch.diagonal(gram)
    threshold = tol * diagonal.max()
    gamma = (index == diagonal.argmin()).to(dtype)
    neg_inf = torch.full_like(gamma, -torch.inf)
    for _ in range(max_iter):
        m_gamma = gram @ gamma
        objective = gamma @ m_gamma
        fw_value, fw_vertex = m_gamma.min(dim=0)
        away_value, away_vertex = torch.where(gamma > 0, m_gamma, neg_inf).max(dim=0)
        fw_gap = objective - fw_value
        use_fw = fw_gap >= away_value - objective

        # Both steps move γ along e_v - γ: forwards (t in [0, 1]) towards the Frank-Wolfe
        # vertex, backwards (t in [-γ_v/(1-γ_v), 0]) away from the away vertex. On that line
        # f(γ + t(e_v - γ)) = f + 2t(m_v - f) + t²||g_v - u||², with m_v = g_v·u.
        vertex = torch.where(use_fw, fw_vertex, away_vertex).view(1)
        m_vertex = m_gamma.gather(0, vertex)
        gamma_vertex = gamma.gather(0, vertex)
        slope = m_vertex - objective
        # A flat line (curvature 0) has slope 0 too, since (e_v - γ)ᵀMγ = (g_v - u)·u; the
        # floor turns 0/0 into a zero step instead of NaN.
        curvature = (diagonal.gather(0, vertex) - 2.0 * m_vertex + objective).clamp_min(tiny)
        longest_back = gamma_vertex / (1.0 - gamma_vertex).clamp_min(tiny)
        step = torch.clamp(
            -slope / curvature,
            min=torch.where(use_fw, 0.0, -longest_back),
            max=torch.where(use_fw, 1.0, 0.0),
        )

        on_vertex = index == vertex
        updated = gamma + step * (on_vertex.to(dtype) - gamma)
        # A full away step removes v from the support; make that exact despite rounding.
        updated = torch.where(on_vertex & (step <= -longest_back), 0.0, updated).clamp_min(0.0)
        updated = updated / updated.sum()
        gamma = torch.where(fw_gap <= threshold, gamma, updated)
    return gamma


def _away_step_frank_wolfe_host(gram: list[list[float]], max_iter: int, tol: float) -> list[float]:
    """:func:`_away_step_frank_wolfe` on the host, stopped at the gap test (same iterates)."""
    n = len(gram)
    tiny = torch.finfo(torch.float64).tiny
    diagonal = [gram[i][i] for i in range(n)]
    threshold = tol * max(diagonal)
    start = min(range(n), key=diagonal.__getitem__)  # the first of ties, as torch's argmin
    gamma = [1.0 if i == start else 0.0 for i in range(n)]
    for _ in range(max_iter):
        m_gamma = [sum(row[j] * gamma[j] for j in range(n)) for row in gram]
        objective = sum(g * m for g, m in zip(gamma, m_gamma, strict=True))
        fw_vertex = min(range(n), key=m_gamma.__getitem__)
        fw_gap = objective - m_gamma[fw_vertex]
        if fw_gap <= threshold:
            break
        support = [i for i in range(n) if gamma[i] > 0]
        away_vertex = max(support, key=m_gamma.__getitem__)
        use_fw = fw_gap >= m_gamma[away_vertex] - objective
        vertex = fw_vertex if use_fw else away_vertex
        slope = m_gamma[vertex] - objective
        curvature = max(diagonal[vertex] - 2.0 * m_gamma[vertex] + objective, tiny)
        longest_back = gamma[vertex] / max(1.0 - gamma[vertex], tiny)
        low, high = (0.0, 1.0) if use_fw else (-longest_back, 0.0)
        step = min(max(-slope / curvature, low), high)
        updated = [g + step * ((1.0 if i == vertex else 0.0) - g) for i, g in enumerate(gamma)]
        if step <= -longest_back:
            updated[vertex] = 0.0
        updated = [max(u, 0.0) for u in updated]
        total = sum(updated)
        gamma = [u / total for u in updated]
    return gamma


def min_norm_weights(grads: torch.Tensor, max_iter: int = 250, tol: float = 1e-6) -> torch.Tensor:
    """The weights γ of eq. (1): the point of the simplex minimising ||γᵀ grads||².

    Args:
        grads: (n, d) tensor, one objective's gradient per row, on any device. It is detached:
            the weights are constants of the eq. (10) step.
        max_iter: number of away-step Frank-Wolfe iterations run; the iterate is frozen once
            converged, so more iterations only cost time.
        tol: convergence threshold on the Frank-Wolfe duality gap ||d||² - min_i g_i·d,
            relative to max_i ||g_i||², where d = γᵀ grads.

    Returns:
        (n,) tensor of non-negative weights summing to 1, on the device and in the dtype of
        ``grads``. For n = 1 it is [1].
    """
    _check_grads(grads)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter: expected an integer >= 1, got {max_iter!r}")
    if not isinstance(tol, int | float) or not tol >= 0:
        raise ConfigError(f"tol: expected a number >= 0, got {tol!r}")
    n = grads.shape[0]
    if n == 1:
        return torch.ones(1, device=grads.device, dtype=grads.dtype)
    rows = grads.detach().to(_work_dtype(grads.device))
    gram = rows @ rows.T
    if gram.device.type == "cpu":
        weights = _away_step_frank_wolfe_host(gram.tolist(), max_iter, float(tol))
        return torch.tensor(weights, dtype=grads.dtype)
    gamma = _away_step_frank_wolfe(gram, max_iter, float(tol))
    return gamma.to(grads.dtype)


def normalize_gradients(grads: torch.Tensor, losses: torch.Tensor, mode: str) -> torch.Tensor:
    """Rescale each objective's gradient before eq. (1), so that no objective dominates by scale.

    Args:
        grads: (n, d) tensor, one objective's gradient per row.
        losses: (n,) tensor of the objectives' values; only used by ``"loss"``, and detached.
        mode: ``"l2"`` divides row i by ||g_i||, ``"loss"`` by |L_i| (the magnitude, so that a
            negative loss does not flip its gradient), ``"none"`` returns ``grads`` unchanged.
            Divisors are floored at a small positive value so zero rows stay zero.

    Returns:
        (n, d) tensor like ``grads``.
    """
    if mode not in NORMALIZATIONS:
        raise ConfigError(
            f"mgda_normalization: expected one of {', '.join(NORMALIZATIONS)}, got {mode!r}"
        )
    _check_grads(grads)
    if mode == "none":
        return grads
    floor = max(_NORM_FLOOR, torch.finfo(grads.dtype).tiny)
    if mode == "l2":
        divisor = torch.linalg.vector_norm(grads, dim=1)
    else:
        if not isinstance(losses, torch.Tensor) or losses.shape != (grads.shape[0],):
            shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses)
            raise ConfigError(
                f"losses: expected a tensor of shape ({grads.shape[0]},), one value per "
                f"gradient row, got {shape}"
            )
        divisor = losses.detach().abs().to(grads.dtype)
    normalized: torch.Tensor = grads / divisor.clamp_min(floor).unsqueeze(1)
    return normalized


def equal_weights(
    n: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The 1/n weights of the "E2RNAS w/o MGDA" ablation (section IV-E, Table VI)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n: expected an integer >= 1 (number of objectives), got {n!r}")
    return torch.full((n,), 1.0 / n, device=device, dtype=dtype)
