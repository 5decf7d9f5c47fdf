"""Debiased Sinkhorn divergence: against POT and geomloss, invariants, gradients, masks."""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import torch
from geomloss import SamplesLoss

from pipeline.model.losses import SinkhornConvergenceWarning, SinkhornLoss, cost_matrix, sinkhorn_divergence

EPS = 0.05


def sphere(*shape: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    """Random unit vectors, shape (..., D)."""
    return torch.nn.functional.normalize(torch.randn(*shape, dtype=dtype, generator=generator), dim=-1)


def simplex(*shape: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    """Random positive weights summing to 1 on the last axis."""
    w = torch.rand(*shape, dtype=dtype, generator=generator) + 0.1
    return w / w.sum(-1, keepdim=True)


def pot_ot(x: np.ndarray, a: np.ndarray, y: np.ndarray, b: np.ndarray, eps: float) -> float:
    """OT_ε(α, β) = ⟨π, C⟩ + ε KL(π | a⊗b) with C = ½‖x − y‖², POT's log-domain solver.

    POT alternates f and g updates; on the self problems OT(α, α) of small spread-out
    clouds this mixes slowly (its marginal error stalls near 1e-6), but the value is
    within 1e-6 of the optimum after a few hundred iterations, so we cap it there."""
    C = 0.5 * ot.dist(x, y)  # ot.dist is the squared Euclidean distance
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
        return float(ot.solve(C, a, b, reg=eps, reg_type="KL", max_iter=500, tol=1e-12).value)


def pot_divergence(x, a, y, b, eps: float = EPS) -> float:
    """Debiased S_ε from three independent POT solves (one pair, numpy float64)."""
    return pot_ot(x, a, y, b, eps) - 0.5 * pot_ot(x, a, x, a, eps) - 0.5 * pot_ot(y, b, y, b, eps)


@pytest.fixture(scope="module")
def padded_batch():
    """B = 3 pairs of unequal sizes on the unit sphere, padded with garbage (incl. nan)."""
    g = torch.Generator().manual_seed(0)
    sizes = [(12, 5), (7, 9), (20, 3)]
    B, N, M, D = len(sizes), 20, 9, 6
    x = torch.full((B, N, D), float("nan"), dtype=torch.float64)
    y = torch.full((B, M, D), 1e6, dtype=torch.float64)
    a = torch.rand(B, N, dtype=torch.float64, generator=g)  # padding keeps junk weights
    b = torch.rand(B, M, dtype=torch.float64, generator=g)
    x_mask = torch.zeros(B, N, dtype=torch.bool)
    y_mask = torch.zeros(B, M, dtype=torch.bool)
    pairs = []
    for i, (n, m) in enumerate(sizes):
        xi, yi = sphere(n, D, generator=g), sphere(m, D, generator=g)
        ai, bi = simplex(n, generator=g), simplex(m, generator=g)
        x[i, :n], y[i, :m], a[i, :n], b[i, :m] = xi, yi, ai, bi
        x_mask[i, :n], y_mask[i, :m] = True, True
        pairs.append((xi, ai, yi, bi))
    return dict(x=x, a=a, y=y, b=b, x_mask=x_mask, y_mask=y_mask, pairs=pairs)


# ------------------------------------------------------------------ independent solvers
def test_matches_pot_with_padding(padded_batch):
    p = padded_batch
    s = sinkhorn_divergence(p["x"], p["a"], p["y"], p["b"], EPS, x_mask=p["x_mask"], y_mask=p["y_mask"])
    expected = [pot_divergence(*(t.numpy() for t in pair)) for pair in p["pairs"]]
    assert s.shape == (3,) and s.dtype == torch.float64
    np.testing.assert_allclose(s.numpy(), expected, atol=1e-5)


def test_float32_matches_pot():
    g = torch.Generator().manual_seed(1)
    x, y = sphere(2, 40, 16, generator=g), sphere(2, 7, 16, generator=g)
    a, b = simplex(2, 40, generator=g), simplex(2, 7, generator=g)
    s = sinkhorn_divergence(x.float(), a.float(), y.float(), b.float(), EPS)
    assert s.dtype == torch.float32
    expected = [pot_divergence(x[i].numpy(), a[i].numpy(), y[i].numpy(), b[i].numpy()) for i in range(2)]
    np.testing.assert_allclose(s.numpy(), expected, atol=1e-4)


def test_matches_geomloss():
    """geomloss: p=2 cost is ½‖x − y‖² and ε = blur²; it runs a fixed annealing schedule,
    so a fine scaling is needed for it to converge to the same value."""
    g = torch.Generator().manual_seed(2)
    x, y = sphere(4, 30, 8, generator=g), sphere(4, 10, 8, generator=g)
    a, b = simplex(4, 30, generator=g), simplex(4, 10, generator=g)
    ours = sinkhorn_divergence(x, a, y, b, EPS)
    ref = SamplesLoss("sinkhorn", p=2, blur=EPS**0.5, debias=True, scaling=0.995, backend="tensorized")(a, x, b, y)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_general_points_and_cosine_cost():
    """sqeuclidean works off the sphere; cosine = sqeuclidean of the normalised points."""
    g = torch.Generator().manual_seed(3)
    x, y = 2 * torch.randn(1, 15, 3, dtype=torch.float64, generator=g), torch.randn(1, 6, 3, dtype=torch.float64, generator=g)
    a, b = simplex(1, 15, generator=g), simplex(1, 6, generator=g)
    s = sinkhorn_divergence(x, a, y, b, 0.5)
    assert s.item() == pytest.approx(pot_divergence(x[0].numpy(), a[0].numpy(), y[0].numpy(), b[0].numpy(), 0.5), abs=1e-6)
    xn, yn = torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(y, dim=-1)
    torch.testing.assert_close(
        sinkhorn_divergence(x, a, y, b, EPS, cost="cosine"), sinkhorn_divergence(xn, a, yn, b, EPS)
    )
    # on the sphere ½‖x − y‖² = 1 − cos(x, y)
    torch.testing.assert_close(cost_matrix(xn, yn), 1 - xn @ yn.transpose(1, 2))


# ------------------------------------------------------------------------- invariants
def test_zero_for_identical_clouds_symmetric_nonnegative():
    g = torch.Generator().manual_seed(4)
    x, y = sphere(8, 25, 10, generator=g), sphere(8, 6, 10, generator=g)
    a, b = simplex(8, 25, generator=g), simplex(8, 6, generator=g)
    perm = torch.randperm(25, generator=g)
    same = sinkhorn_divergence(x, a, x[:, perm], a[:, perm], EPS)
    torch.testing.assert_close(same, torch.zeros(8, dtype=torch.float64), atol=1e-7, rtol=0)
    # symmetric up to the solver tolerance (the final updates alternate f then g)
    s_xy, s_yx = sinkhorn_divergence(x, a, y, b, EPS), sinkhorn_divergence(y, b, x, a, EPS)
    torch.testing.assert_close(s_xy, s_yx, atol=1e-6, rtol=0)
    assert (s_xy > 1e-3).all()
    # moving β towards α shrinks the divergence (definiteness, continuity)
    y_near = torch.nn.functional.normalize(x[:, :6] + 0.05 * y, dim=-1)
    s_near = sinkhorn_divergence(x, a, y_near, b, EPS)
    assert (s_near >= 0).all() and (s_near < s_xy).all()


def test_biased_ot_is_not_zero_on_identical_clouds():
    g = torch.Generator().manual_seed(5)
    x, a = sphere(1, 10, 4, generator=g), simplex(1, 10, generator=g)
    raw = sinkhorn_divergence(x, a, x, a, 1.0, debias=False)
    assert raw.item() == pytest.approx(pot_ot(x[0].numpy(), a[0].numpy(), x[0].numpy(), a[0].numpy(), 1.0), abs=1e-7)
    assert raw.item() > 1e-3


# ------------------------------------------------------------------------------ masks
def test_padding_changes_nothing_and_gets_no_gradient(padded_batch):
    p = padded_batch
    x, y = p["x"].clone().requires_grad_(), p["y"].clone().requires_grad_()
    # pairs of a batch share one ε schedule: converge tightly to compare with single pairs
    s = sinkhorn_divergence(x, p["a"], y, p["b"], EPS, x_mask=p["x_mask"], y_mask=p["y_mask"], tol=1e-12)
    s.sum().backward()
    for i, (xi, ai, yi, bi) in enumerate(p["pairs"]):
        xi, yi = xi.clone().requires_grad_(), yi.clone().requires_grad_()
        si = sinkhorn_divergence(xi[None], ai[None], yi[None], bi[None], EPS, tol=1e-12)
        si.sum().backward()
        assert s[i].item() == pytest.approx(si.item(), abs=1e-10)
        n, m = len(ai), len(bi)
        torch.testing.assert_close(x.grad[i, :n], xi.grad)
        torch.testing.assert_close(y.grad[i, :m], yi.grad)
        assert (x.grad[i, n:] == 0).all() and (y.grad[i, m:] == 0).all()


def test_empty_cloud_and_bad_shapes_raise():
    x, a = sphere(2, 4, 3), simplex(2, 4)
    mask = torch.tensor([[True] * 4, [False] * 4])
    with pytest.raises(ValueError, match=r"sum to 0.*\[1\]"):
        sinkhorn_divergence(x, a, x, a, EPS, x_mask=mask)
    with pytest.raises(ValueError, match="weights must be"):
        sinkhorn_divergence(x, a[:, :3], x, a, EPS)
    with pytest.raises(ValueError, match="non-negative"):
        sinkhorn_divergence(x, -a, x, a, EPS)


# -------------------------------------------------------------------------- gradients
def test_gradient_matches_finite_differences():
    """Envelope-theorem gradient vs finite differences (float64, converged tightly).

    Weights enter through a softmax: S is defined on probability vectors, so only
    directions tangent to the simplex are meaningful."""
    g = torch.Generator().manual_seed(6)
    x, y = sphere(2, 5, 3, generator=g), sphere(2, 4, 3, generator=g)
    la, lb = torch.randn(2, 5, dtype=torch.float64, generator=g), torch.randn(2, 4, dtype=torch.float64, generator=g)

    def f(x, la, y, lb):
        return sinkhorn_divergence(x, la.softmax(-1), y, lb.softmax(-1), 0.2, tol=1e-13, max_iter=20_000)

    inputs = tuple(t.clone().requires_grad_() for t in (x, la, y, lb))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_float32_gradient_agrees_with_float64():
    """The production path (float32, default tol) gives the gradient checked above."""
    g = torch.Generator().manual_seed(7)
    x, y = sphere(3, 50, 16, generator=g), sphere(3, 8, 16, generator=g)
    a, b = simplex(3, 50, generator=g), simplex(3, 8, generator=g)
    x64, x32 = x.clone().requires_grad_(), x.float().requires_grad_()
    sinkhorn_divergence(x64, a, y, b, EPS, tol=1e-12).sum().backward()
    sinkhorn_divergence(x32, a.float(), y.float(), b.float(), EPS).sum().backward()
    torch.testing.assert_close(x32.grad.double(), x64.grad, atol=5e-5, rtol=0)


# --------------------------------------------------------------- precision, warnings
def test_fp32_under_bf16_autocast():
    g = torch.Generator().manual_seed(8)
    x, y = sphere(2, 30, 8, dtype=torch.float32, generator=g), sphere(2, 5, 8, dtype=torch.float32, generator=g)
    a, b = simplex(2, 30, dtype=torch.float32, generator=g), simplex(2, 5, dtype=torch.float32, generator=g)
    ref = sinkhorn_divergence(x, a, y, b, EPS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = sinkhorn_divergence(x, a, y, b, EPS)
        s_bf16_inputs = sinkhorn_divergence(x.bfloat16(), a.bfloat16(), y.bfloat16(), b.bfloat16(), EPS)
    assert s.dtype == torch.float32 and s_bf16_inputs.dtype == torch.float32
    torch.testing.assert_close(s, ref)


def test_warns_when_not_converged():
    # seeded: about 4 % of random 20-vs-5-point problems at ε = 0.01 need more than the default 1000 iterations
    g = torch.Generator().manual_seed(0)
    x, y = sphere(1, 20, 4, generator=g), sphere(1, 5, 4, generator=g)
    a, b = simplex(1, 20, generator=g), simplex(1, 5, generator=g)
    with pytest.warns(SinkhornConvergenceWarning, match="max_iter=2"):
        s = sinkhorn_divergence(x, a, y, b, 0.01, max_iter=2)
    assert torch.isfinite(s).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sinkhorn_divergence(x, a, y, b, 0.01)  # default max_iter converges silently


def test_module_reduction():
    x, y, a, b = sphere(3, 10, 4), sphere(3, 5, 4), simplex(3, 10), simplex(3, 5)
    per_pair = sinkhorn_divergence(x, a, y, b, 0.1)
    assert SinkhornLoss(0.1)(x, a, y, b).item() == pytest.approx(per_pair.mean().item())
    torch.testing.assert_close(SinkhornLoss(0.1, reduction="none")(x, a, y, b), per_pair)
    assert "eps=0.1" in repr(SinkhornLoss(0.1, scaling=0.8))
