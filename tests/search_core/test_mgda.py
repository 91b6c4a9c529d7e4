"""Tests of search_core.mgda against independent solutions of eq. (1).

The reference QP solution is computed here in numpy float64 by enumerating supports: for each
subset S of objectives, the KKT system of min γᵀMγ s.t. Σγ = 1 on S is solved, and the
feasible candidate with the smallest objective is kept. The reference certifies itself (its
duality gap is checked) and is cross-checked against scipy's SLSQP.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from search_core.errors import ConfigError
from search_core.mgda import equal_weights, min_norm_weights, normalize_gradients

Instance = tuple[str, np.ndarray]


def _instances() -> Iterator[Instance]:
    """Random gradient matrices (n, d), float64, covering the hard cases of eq. (1)."""
    rng = np.random.default_rng(20240611)
    for n, d in itertools.product(range(2, 7), (1, 2, 3, 10, 60, 300)):
        yield f"gauss n={n} d={d}", rng.standard_normal((n, d))
    for n in range(2, 7):
        d = int(rng.integers(5, 40))
        # Objectives that mostly agree: the minimiser is interior and the Gram well conditioned.
        shared = rng.standard_normal(d)
        yield f"agreeing n={n}", shared + 0.5 * rng.standard_normal((n, d))
        # Zero in the hull: the last row cancels a positive mix of the others.
        rows = rng.standard_normal((n - 1, d))
        mix = rng.dirichlet(np.ones(n - 1))
        yield f"zero-in-hull n={n}", np.vstack([rows, -(mix @ rows) * rng.uniform(0.5, 2)])
        # Nearly collinear, different lengths: M is close to rank one.
        base = rng.standard_normal(d)
        scales = rng.uniform(0.5, 2.0, size=(n, 1))
        yield f"near-collinear n={n}", scales * base + 1e-4 * rng.standard_normal((n, d))
        # Tiny and huge gradients: the relative tolerance makes the scale irrelevant.
        yield f"tiny n={n}", 1e-5 * rng.standard_normal((n, d))
        yield f"huge n={n}", 1e4 * rng.standard_normal((n, d))


INSTANCES = list(_instances())


def _objective(M: np.ndarray, gamma: np.ndarray) -> float:
    return float(gamma @ M @ gamma)


def _qp_by_supports(M: np.ndarray) -> np.ndarray:
    """The exact minimiser of γᵀMγ on the simplex, by enumerating the supports."""
    n = M.shape[0]
    # The minimiser does not depend on the scale of M; unit scale keeps the KKT system balanced.
    M = M / max(np.diag(M).max(), 1e-300)
    best, best_value = np.eye(n)[int(np.argmin(np.diag(M)))], float(np.min(np.diag(M)))
    for size in range(2, n + 1):
        for support in itertools.combinations(range(n), size):
            idx = list(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = M[np.ix_(idx, idx)]
            kkt[:size, size] = 1.0
            kkt[size, :size] = 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
            weights = solution[:size]
            if np.any(weights < -1e-12) or abs(weights.sum() - 1.0) > 1e-9:
                continue
            gamma = np.zeros(n)
            gamma[idx] = np.clip(weights, 0.0, None)
            gamma /= gamma.sum()
            value = _objective(M, gamma)
            if value < best_value:
                best, best_value = gamma, value
    result: np.ndarray = best
    return result


def _qp_by_slsqp(M: np.ndarray) -> np.ndarray:
    n = M.shape[0]
    M = M / max(np.diag(M).max(), 1e-300)  # SLSQP's ftol is absolute
    result = minimize(
        lambda x: x @ M @ x,
        np.full(n, 1.0 / n),
        jac=lambda x: 2.0 * M @ x,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    gamma: np.ndarray = np.clip(result.x, 0.0, None)
    gamma /= gamma.sum()
    return gamma


def _relative_gap(M: np.ndarray, gamma: np.ndarray) -> float:
    """Frank-Wolfe gap ||d||² - min_i g_i·d, relative to max_i ||g_i||²."""
    m_gamma = M @ gamma
    return float((gamma @ m_gamma - m_gamma.min()) / max(np.diag(M).max(), 1e-300))


def _solve(grads: np.ndarray, max_iter: int = 250, tol: float = 1e-6) -> np.ndarray:
    weights = min_norm_weights(torch.from_numpy(grads), max_iter=max_iter, tol=tol)
    assert weights.dtype == torch.float64
    result: np.ndarray = weights.numpy()
    return result


@functools.cache
def _solved(index: int, tol: float) -> np.ndarray:
    """The solver's weights for INSTANCES[index] with 250 iterations, shared by the tests."""
    return _solve(INSTANCES[index][1], tol=tol)


@functools.cache
def _exact(index: int) -> np.ndarray:
    grads = INSTANCES[index][1]
    return _qp_by_supports(grads @ grads.T)


def test_reference_is_optimal_and_agrees_with_slsqp() -> None:
    for index, (name, grads) in enumerate(INSTANCES):
        M = grads @ grads.T
        scale = np.diag(M).max()
        exact = _exact(index)
        assert _relative_gap(M, exact) < 1e-9, name
        slsqp = _qp_by_slsqp(M)
        assert _objective(M, exact) <= _objective(M, slsqp) + 1e-12 * scale, name
        assert _objective(M, slsqp) - _objective(M, exact) < 1e-7 * scale, name


@pytest.mark.parametrize("tol", [1e-6, 1e-12])
def test_objective_matches_the_exact_qp(tol: float) -> None:
    for index, (name, grads) in enumerate(INSTANCES):
        M = grads @ grads.T
        scale = np.diag(M).max()
        value = _objective(M, _solved(index, tol))
        optimum = _objective(M, _exact(index))
        # f - f* is at most twice the gap, which the solver stops below tol * scale; the
        # floor leaves room for rounding in the Gram matrix when tol is tiny.
        assert value >= optimum - 1e-12 * scale, name
        assert value - optimum <= 2 * max(tol, 1e-13) * scale + 1e-9 * optimum, name


def test_weights_match_the_exact_qp_when_unique() -> None:
    checked = 0
    for index, (name, grads) in enumerate(INSTANCES):
        M = grads @ grads.T
        eigenvalues = np.linalg.eigvalsh(M)
        if eigenvalues[0] < 1e-3 * eigenvalues[-1]:
            continue  # the minimiser is not unique or not well determined
        checked += 1
        np.testing.assert_allclose(_solved(index, 1e-12), _exact(index), atol=1e-6, err_msg=name)
    assert checked >= 20


def test_two_objectives_closed_form() -> None:
    rng = np.random.default_rng(7)
    for trial in range(30):
        g1, g2 = rng.standard_normal((2, int(rng.integers(1, 50))))
        if trial % 3 == 1:
            g2 = 0.3 * g1 + 0.01 * g2  # clipped at γ1 = 0: g2 alone is the min-norm point
        elif trial % 3 == 2:
            g1 = 2.5 * g2 + 0.01 * g1  # clipped at γ1 = 0 as well, other order
        gamma1 = np.clip((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0.0, 1.0)
        grads = np.stack([g1, g2])
        for max_iter in (1, 250):
            weights = _solve(grads, max_iter=max_iter)
            np.testing.assert_allclose(weights, [gamma1, 1.0 - gamma1], atol=1e-9)


def test_weights_lie_on_the_simplex() -> None:
    for index, (name, _) in enumerate(INSTANCES):
        weights = _solved(index, 1e-6)
        assert np.all(weights >= 0) and abs(weights.sum() - 1.0) <= 1e-12, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_weights_lie_on_the_simplex_in_low_precision(dtype: torch.dtype) -> None:
    atol = 1e-6 if dtype == torch.float32 else 1e-2
    for name, grads in INSTANCES[::6]:
        weights = min_norm_weights(torch.from_numpy(grads).to(dtype))
        assert weights.dtype == dtype and weights.shape == (grads.shape[0],), name
        assert torch.all(weights >= 0), name
        assert abs(weights.double().sum().item() - 1.0) <= atol, name


def test_combination_is_the_min_norm_element() -> None:
    tol = 1e-6
    for index, (name, grads) in enumerate(INSTANCES):
        combined = _solved(index, tol) @ grads
        norm_sq = combined @ combined
        scale = (grads * grads).sum(axis=1).max()
        assert np.all(grads @ combined >= norm_sq - tol * scale * (1 + 1e-9)), name


def test_degenerate_gradients_give_finite_weights() -> None:
    g = torch.randn(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    cases = {
        "all zero": torch.zeros(3, 5),
        "one zero row": torch.cat([g[:2], torch.zeros(1, 7, dtype=torch.float64)]),
        "duplicated": torch.cat([g[:1]] * 3),
        "collinear": torch.cat([g[:1], 2 * g[:1], 0.5 * g[:1]]),
        "d = 0": torch.zeros(3, 0),
        "opposite": torch.cat([g[:1], -g[:1]]),
    }
    for name, grads in cases.items():
        weights = min_norm_weights(grads, tol=0.0)
        assert torch.isfinite(weights).all(), name
        assert abs(weights.sum().item() - 1.0) < 1e-9, name
    assert min_norm_weights(cases["one zero row"]).tolist() == [0.0, 0.0, 1.0]
    assert min_norm_weights(cases["collinear"]).tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(
        min_norm_weights(cases["opposite"]), torch.tensor([0.5, 0.5], dtype=torch.float64)
    )


def test_single_objective_gets_weight_one() -> None:
    weights = min_norm_weights(torch.randn(1, 10, dtype=torch.float32))
    assert weights.dtype == torch.float32 and weights.tolist() == [1.0]


def test_weights_do_not_depend_on_gradient_scale() -> None:
    grads = torch.randn(5, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    reference = min_norm_weights(grads)
    for scale in (1e-8, 1e-3, 1e4):
        torch.testing.assert_close(min_norm_weights(scale * grads), reference, atol=1e-9, rtol=0)


def test_frozen_iterate_equals_an_early_stopped_run() -> None:
    checked = 0
    for index, (name, grads) in enumerate(INSTANCES[::3]):
        M = grads @ grads.T
        short = _solved(3 * index, 1e-6)
        if _relative_gap(M, short) > 1e-6:
            continue  # not converged within 250 iterations: nothing is frozen yet
        checked += 1
        np.testing.assert_array_equal(_solve(grads, max_iter=400), short, err_msg=name)
    assert checked >= 12


def test_max_iter_bounds_the_work() -> None:
    grads = torch.randn(5, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    M = (grads @ grads.T).numpy()
    one_step = min_norm_weights(grads, max_iter=1).numpy()
    assert np.count_nonzero(one_step) <= 2  # a vertex and one Frank-Wolfe step towards another
    assert _relative_gap(M, one_step) > _relative_gap(M, min_norm_weights(grads).numpy())


def test_no_host_synchronisation_on_meta_tensors() -> None:
    # Meta tensors carry no data: .item(), .cpu(), .tolist(), nonzero() or a Python `if` on a
    # value would raise, so passing here shows the solver never reads values on the host.
    grads = torch.empty(5, 224, device="meta")
    weights = min_norm_weights(grads, max_iter=3)
    assert weights.device.type == "meta" and weights.shape == (5,)
    losses = torch.empty(5, device="meta")
    for mode in ("l2", "loss", "none"):
        assert normalize_gradients(grads, losses, mode).shape == (5, 224)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_synchronisation_on_cuda() -> None:
    grads = torch.randn(5, 224, device="cuda")
    losses = torch.rand(5, device="cuda") + 0.1
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for mode in ("l2", "loss", "none"):
            weights = min_norm_weights(normalize_gradients(grads, losses, mode))
        equal_weights(5, grads.device, grads.dtype)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert weights.device == grads.device
    np.testing.assert_allclose(
        weights.cpu().double().numpy(), _solve(grads.cpu().double().numpy()), atol=1e-5
    )


def test_weights_are_detached() -> None:
    grads = torch.randn(3, 6, requires_grad=True)
    assert not min_norm_weights(grads).requires_grad


def test_normalize_l2_by_hand() -> None:
    grads = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, -0.5]])
    result = normalize_gradients(grads, torch.ones(3), "l2")
    torch.testing.assert_close(result, torch.tensor([[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]]))


def test_normalize_loss_by_hand() -> None:
    grads = torch.tensor([[3.0, 4.0], [1.0, -2.0], [8.0, 0.0], [1.0, 1.0]])
    losses = torch.tensor([2.0, 0.5, -4.0, 0.0], requires_grad=True)
    result = normalize_gradients(grads, losses, "loss")
    assert not result.requires_grad
    torch.testing.assert_close(result[:3], torch.tensor([[1.5, 2.0], [2.0, -4.0], [2.0, 0.0]]))
    # A zero loss is floored: the row stays finite and keeps its direction.
    assert torch.isfinite(result[3]).all() and result[3, 0] == result[3, 1] > 0


def test_normalize_none_is_identity() -> None:
    grads = torch.randn(3, 4)
    assert normalize_gradients(grads, torch.ones(3), "none") is grads


def test_equal_weights() -> None:
    weights = equal_weights(5, torch.device("cpu"), torch.float64)
    assert weights.dtype == torch.float64 and weights.tolist() == [0.2] * 5
    assert equal_weights(1, "cpu", torch.float32).tolist() == [1.0]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"grads": torch.zeros(5)}, "grads"),
        ({"grads": torch.zeros(2, 3, 4)}, "grads"),
        ({"grads": torch.zeros(0, 3)}, "grads"),
        ({"grads": torch.zeros(2, 3, dtype=torch.int64)}, "grads"),
        ({"grads": [[1.0, 2.0]]}, "grads"),
        ({"grads": torch.zeros(2, 3), "max_iter": 0}, "max_iter"),
        ({"grads": torch.zeros(2, 3), "max_iter": 2.5}, "max_iter"),
        ({"grads": torch.zeros(2, 3), "max_iter": True}, "max_iter"),
        ({"grads": torch.zeros(2, 3), "tol": -1e-3}, "tol"),
        ({"grads": torch.zeros(2, 3), "tol": float("nan")}, "tol"),
    ],
)
def test_min_norm_weights_rejects_bad_arguments(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ConfigError, match=argument):
        min_norm_weights(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["L2", "max", ""])
def test_unknown_normalization_names_the_setting(mode: str) -> None:
    with pytest.raises(ConfigError) as error:
        normalize_gradients(torch.zeros(2, 3), torch.ones(2), mode)
    message = str(error.value)
    assert "mgda_normalization" in message and repr(mode) in message
    assert all(name in message for name in ("l2", "loss", "none"))


def test_normalize_rejects_mismatched_losses() -> None:
    with pytest.raises(ConfigError, match="losses"):
        normalize_gradients(torch.zeros(2, 3), torch.ones(3), "loss")
    with pytest.raises(ConfigError, match="grads"):
        normalize_gradients(torch.zeros(3), torch.ones(3), "l2")


@pytest.mark.parametrize("n", [0, -1, 2.0])
def test_equal_weights_rejects_bad_n(n: int) -> None:
    with pytest.raises(ConfigError, match="n: "):
        equal_weights(n, "cpu", torch.float32)


def test_the_host_loop_follows_the_masked_tensor_loop() -> None:
    """The CPU's host iteration stops at the gap test; the masked tensor loop (what an
    accelerator runs) keeps the converged iterate: both give the same step, to rounding, on
    random and degenerate (parallel, equal, zero) gradients."""
    from search_core.mgda import _away_step_frank_wolfe, _away_step_frank_wolfe_host

    generator = torch.Generator().manual_seed(3)
    for trial in range(200):
        n = 2 + trial % 5
        grads = torch.randn(n, 40, generator=generator, dtype=torch.float64)
        if trial % 4 == 1:
            grads[1] = 2.0 * grads[0]
        elif trial % 4 == 2:
            grads[-1] = grads[0]
        elif trial % 4 == 3:
            grads[0] = 0.0
        gram = grads @ grads.T
        masked = _away_step_frank_wolfe(gram, 250, 1e-6)
        host = torch.tensor(
            _away_step_frank_wolfe_host(gram.tolist(), 250, 1e-6), dtype=torch.float64
        )
        # The combined direction γᵀG (what eq. 10 steps along) agrees; so do the weights,
        # except where equal rows let the weight split between them either way.
        scale = grads.abs().max()
        assert torch.allclose(host @ grads, masked @ grads, rtol=0, atol=1e-12 * scale), trial
        if trial % 4 != 2:
            assert torch.allclose(host, masked, rtol=0, atol=1e-12), (trial, host, masked)
