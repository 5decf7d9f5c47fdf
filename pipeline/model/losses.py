r"""Debiased Sinkhorn divergence between batches of weighted point clouds.

For two discrete probability measures α = Σ_i a_i δ_{x_i} and β = Σ_j b_j δ_{y_j}
the entropic optimal-transport cost with blur ε is

.. math::
    \mathrm{OT}_\varepsilon(\alpha, \beta) = \min_{\pi \in \Pi(a, b)}
        \langle \pi, C \rangle + \varepsilon\, \mathrm{KL}(\pi \,|\, a \otimes b)
    = \max_{f, g}\ \langle a, f \rangle + \langle b, g \rangle
        - \varepsilon \langle a \otimes b, e^{(f \oplus g - C)/\varepsilon} - 1 \rangle ,

and the debiased Sinkhorn divergence (Genevay, Peyré & Cuturi 2018; Feydy et al. 2019) is

.. math::
    S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
        - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha) - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta).

S_ε is symmetric, non-negative, zero iff α = β, convex in each argument, and
interpolates between W₂²/2 (ε → 0) and an MMD (ε → ∞). ``OT_ε`` here includes the
entropic term ε·KL(π | a⊗b), the convention of geomloss (``SamplesLoss("sinkhorn",
p=2, blur=√ε, debias=True)``) and of POT's ``ot.batch.solve_batch(..., reg_type="kl")``;
POT's ``empirical_sinkhorn_divergence`` drops that term and returns a different number.

Cost. The default ground cost is C(x, y) = ½‖x − y‖², which for unit vectors (points
on the sphere, e.g. sentence embeddings) equals 1 − cos(x, y) ∈ [0, 2]. With
``cost="cosine"`` the inputs are normalised first, so C = 1 − cos(x, y) for any
non-zero vectors (and gradients flow through the normalisation).

Solver. Symmetric log-domain Sinkhorn iterations (Feydy 2020, thesis Alg. 3.5):
every potential is updated by the soft-c-transform

.. math::
    f_i \leftarrow \tfrac12 \Big( f_i - \varepsilon \log \sum_j b_j
        \exp\big[(g_j - C(x_i, y_j)) / \varepsilon\big] \Big),

computed with a max-shifted log-sum-exp. The cross problem α↔β uses ε-scaling: ε
starts at the largest cost in the batch and is multiplied by ``scaling²`` (blur √ε by
``scaling``) per iteration until it reaches the target ε; iterations then continue at
ε with alternating updates (f ← T(g), then g ← T(f)) until the potentials move by less
than ``tol`` (cost units) or ``max_iter`` is reached, which warns. The self problems α↔α and β↔β are solved directly at ε (their
averaged iteration converges in a handful of steps at any ε), and each of the three
problems stops as soon as it has converged, so the expensive N×N self-problem costs
a few iterations instead of the whole annealing schedule.

Gradients use the envelope theorem, as geomloss does: the loop runs under
``torch.no_grad`` and one last soft-c-transform from the converged (detached)
potentials is differentiated, so backward costs one iteration, not the whole loop.
The gradient is exact at convergence; second derivatives are not supported.

Everything runs in float32 (float64 inputs stay float64), also under autocast.

References:
    A. Genevay, G. Peyré, M. Cuturi. Learning generative models with Sinkhorn
    divergences. AISTATS 2018.
    J. Feydy, T. Séjourné, F.-X. Vialard, S. Amari, A. Trouvé, G. Peyré.
    Interpolating between optimal transport and MMD using Sinkhorn divergences.
    AISTATS 2019.
    J. Feydy. Geometric data analysis, beyond convolutions. PhD thesis, 2020, §3.3.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
from torch import Tensor, nn

Cost = Literal["sqeuclidean", "cosine"]

# log-weight of a point with zero mass (padding): exp(_LOG_ZERO + anything finite) == 0
# in float32 and float64, without the inf - inf = nan of a true -inf.
_LOG_ZERO = -1e5


class SinkhornConvergenceWarning(UserWarning):
    """The Sinkhorn loop hit ``max_iter`` before its potentials moved less than ``tol``."""


# ----------------------------------------------------------------------------- costs
def cost_matrix(x: Tensor, y: Tensor, cost: Cost = "sqeuclidean") -> Tensor:
    """Ground cost between two batches of point clouds.

    Args:
        x: (B, N, D) points.
        y: (B, M, D) points.
        cost: ``"sqeuclidean"``: C = ½‖x − y‖² (= 1 − cos for unit vectors);
            ``"cosine"``: C = 1 − cos(x, y) = ½‖x/‖x‖ − y/‖y‖‖².

    Returns:
        (B, N, M) costs, clamped at 0 against round-off.
    """
    if cost == "cosine":
        x = nn.functional.normalize(x, dim=-1)
        y = nn.functional.normalize(y, dim=-1)
        return torch.baddbmm(torch.ones_like(x[..., :1]), x, y.transpose(1, 2), alpha=-1).clamp_min(0)
    if cost == "sqeuclidean":
        x2 = 0.5 * (x * x).sum(-1, keepdim=True)  # (B, N, 1)
        y2 = 0.5 * (y * y).sum(-1).unsqueeze(1)  # (B, 1, M)
        return torch.baddbmm(x2 + y2, x, y.transpose(1, 2), alpha=-1).clamp_min(0)
    raise ValueError(f"unknown cost {cost!r}: use 'sqeuclidean' (½‖x−y‖²) or 'cosine' (1 − cos)")


def _softmin(eps: float, C: Tensor, h: Tensor) -> Tensor:
    """Soft-c-transform f_i = −ε log Σ_j exp(h_j − C_ij / ε).

    Args:
        eps: temperature ε.
        C: (B, N, M) costs.
        h: (B, M) log-weights plus potentials divided by ε, ``log b + g / ε``.

    Returns:
        (B, N) potential.
    """
    return -eps * torch.logsumexp(torch.sub(h.unsqueeze(1), C, alpha=1.0 / eps), dim=2)


# -------------------------------------------------------------------------- inputs
def _prepare_weights(w: Tensor, mask: Tensor | None, name: str) -> tuple[Tensor, Tensor]:
    """Mask, validate and normalise weights.

    Returns:
        (weights summing to 1 per row, log-weights with ``_LOG_ZERO`` where the weight is 0).
    """
    if mask is not None:
        if mask.shape != w.shape:
            raise ValueError(f"{name}_mask has shape {tuple(mask.shape)}, expected {tuple(w.shape)}")
        w = w.masked_fill(~mask.bool(), 0.0)
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights {name} must be finite and non-negative")
    total = w.sum(-1, keepdim=True)  # (B, 1)
    if (total <= 0).any():
        empty = (total.squeeze(-1) <= 0).nonzero().flatten().tolist()
        raise ValueError(f"weights {name} sum to 0 (empty cloud) for batch rows {empty[:10]}")
    w = w / total
    log_w = torch.where(w > 0, w.clamp_min(torch.finfo(w.dtype).tiny).log(), _LOG_ZERO)
    return w, log_w


def _prepare_points(p: Tensor, mask: Tensor | None, name: str) -> Tensor:
    """Zero the padded points (so garbage or nan there cannot leak into C) and check the rest."""
    if mask is not None:
        p = p.masked_fill(~mask.bool().unsqueeze(-1), 0.0)
    if not torch.isfinite(p).all():
        raise ValueError(f"points {name} contain nan or inf outside the padding mask")
    return p


def _epsilon_schedule(eps_start: float, eps: float, scaling: float) -> list[float]:
    """ε_k = ε_start · scaling^(2k) down to (and ending with) ε; blur √ε shrinks by ``scaling``."""
    if eps_start <= eps:
        return [eps]
    n = int(math.ceil(math.log(eps / eps_start) / (2 * math.log(scaling))))
    return [eps_start * scaling ** (2 * k) for k in range(n)] + [eps]


# ---------------------------------------------------------------------------- solver
def sinkhorn_divergence(
    x: Tensor,
    a: Tensor,
    y: Tensor,
    b: Tensor,
    eps: float = 0.05,
    *,
    x_mask: Tensor | None = None,
    y_mask: Tensor | None = None,
    cost: Cost = "sqeuclidean",
    scaling: float = 0.9,
    max_iter: int = 1000,
    tol: float = 1e-5,
    debias: bool = True,
    warn: bool = True,
) -> Tensor:
    r"""Debiased Sinkhorn divergence S_ε(α, β) for a batch of pairs of point clouds.

    S_ε(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β), with
    OT_ε(α, β) = min_π ⟨π, C⟩ + ε KL(π | a⊗b) over couplings of a and b
    (see the module docstring for the maths, solver and references).

    Args:
        x: (B, N, D) points of α, e.g. unit phrase embeddings.
        a: (B, N) non-negative weights of α; normalised to sum 1 per row.
        y: (B, M, D) points of β.
        b: (B, M) non-negative weights of β; normalised to sum 1 per row.
        eps: entropic regularisation ε in cost units (blur √ε in distance units;
            geomloss ``blur = eps ** 0.5``).
        x_mask: (B, N) bool, True for real points; padded points get weight 0 and
            cannot change the value (their coordinates may be anything, even nan).
        y_mask: (B, M) bool, as ``x_mask``.
        cost: ``"sqeuclidean"`` C = ½‖x − y‖² (= 1 − cos on the unit sphere) or
            ``"cosine"`` C = 1 − cos(x, y) with the inputs normalised.
        scaling: ε-scaling ratio in (0, 1) of successive blurs √ε (geomloss' meaning);
            closer to 1 is more accurate and slower.
        max_iter: maximum number of Sinkhorn iterations (annealing included).
        tol: stop when no potential moved by more than ``tol`` (cost units) in one
            iteration at the target ε.
        debias: False returns the biased OT_ε(α, β) instead of S_ε.
        warn: emit a :class:`SinkhornConvergenceWarning` when ``max_iter`` is hit.

    Returns:
        (B,) divergences, float32 (float64 for float64 inputs), differentiable with
        respect to x, y, a and b.
    """
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"expected x (B, N, D) and y (B, M, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    if a.shape != x.shape[:2] or b.shape != y.shape[:2]:
        raise ValueError(
            f"weights must be a (B, N) and b (B, M): got a {tuple(a.shape)} for x {tuple(x.shape)}, "
            f"b {tuple(b.shape)} for y {tuple(y.shape)}"
        )
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if not 0 < scaling < 1:
        raise ValueError(f"scaling must be in (0, 1), got {scaling}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")

    dtype = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = _prepare_points(x.to(dtype), x_mask, "x")
        y = _prepare_points(y.to(dtype), y_mask, "y")
        a, a_log = _prepare_weights(a.to(dtype), x_mask, "a")
        b, b_log = _prepare_weights(b.to(dtype), y_mask, "b")

        # Costs. One argument is detached, as in geomloss: with the envelope theorem the
        # gradient of OT(α, β) w.r.t. x flows through f_ba only and w.r.t. y through g_ab
        # only; C_xx(x, x.detach()) carries the whole gradient of ½ OT(α, α) through f_aa.
        C_xy = cost_matrix(x, y.detach(), cost)  # (B, N, M)
        C_yx = cost_matrix(y, x.detach(), cost)  # (B, M, N)
        C_xx = cost_matrix(x, x.detach(), cost) if debias else None  # (B, N, N)
        C_yy = cost_matrix(y, y.detach(), cost) if debias else None  # (B, M, M)

        f_ab, g_ab, f_aa, g_bb, converged = _sinkhorn_loop(
            eps, a_log, b_log, C_xy.detach(),
            None if C_xx is None else C_xx.detach(),
            None if C_yy is None else C_yy.detach(),
            scaling=scaling, max_iter=max_iter, tol=tol,
        )
        if warn and not converged:
            warnings.warn(
                f"sinkhorn_divergence did not converge in max_iter={max_iter} iterations "
                f"(tol={tol}, eps={eps}); the value may be inaccurate: raise max_iter, eps or tol",
                SinkhornConvergenceWarning,
                stacklevel=2,
            )

        # One last differentiable soft-c-transform from the detached optimal potentials
        # (envelope theorem); f and g are updated in parallel from the same old values.
        # Gradients: ∂/∂x through C, ∂/∂a = f_ab − f_aa and ∂/∂b = g_ab − g_bb (up to the
        # constant removed by the normalisation of a and b).
        f_ab, g_ab = (
            _softmin(eps, C_xy, (b_log + g_ab / eps).detach()),  # (B, N)
            _softmin(eps, C_yx, (a_log + f_ab / eps).detach()),  # (B, M)
        )
        value = (a * f_ab).sum(-1) + (b * g_ab).sum(-1)  # OT_ε(α, β) = ⟨a, f⟩ + ⟨b, g⟩
        if debias:
            f_aa = _softmin(eps, C_xx, (a_log + f_aa / eps).detach())  # (B, N)
            g_bb = _softmin(eps, C_yy, (b_log + g_bb / eps).detach())  # (B, M)
            # ½ OT_ε(α, α) = ⟨a, f_aa⟩ and ½ OT_ε(β, β) = ⟨b, g_bb⟩
            value = value - (a * f_aa).sum(-1) - (b * g_bb).sum(-1)
    return value


def _softmin_inplace(eps: float, C: Tensor, h: Tensor, dim: int = 2) -> Tensor:
    """:func:`_softmin` for the no-grad loop; ``dim=1`` transforms through Cᵀ without a copy.

    Same numbers as ``torch.logsumexp`` (max-shifted), but the one (B, N, M) temporary is
    shifted and exponentiated in place: ~30% faster on the N×N self-problem.
    """
    z = torch.sub(h.unsqueeze(3 - dim), C, alpha=1.0 / eps)  # (B, N, M): h_j − C_ij / ε
    m = z.amax(dim, keepdim=True)
    lse = z.sub_(m).exp_().sum(dim).log_().add_(m.squeeze(dim))
    return lse.mul_(-eps)


@torch.no_grad()
def _sinkhorn_loop(
    eps: float,
    a_log: Tensor,
    b_log: Tensor,
    C_xy: Tensor,
    C_xx: Tensor | None,
    C_yy: Tensor | None,
    *,
    scaling: float,
    max_iter: int,
    tol: float,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, bool]:
    """Symmetric log-domain Sinkhorn loop, on detached costs.

    The cross problem α↔β is annealed (ε-scaling from the largest cost down to ε) with
    symmetric averaged updates, then iterated at ε with alternating updates, whose
    slowest mode contracts ~4x faster per iteration than the averaged one's.
    The self problems α↔α and β↔β are solved directly at ε: their averaged fixed-point
    iteration f ← ½(f + T_ε(f)) converges in a handful of steps at any ε (Feydy et al.
    2019, §3.1), so annealing them, as geomloss does, only multiplies the N×N work.
    Each problem stops as soon as its potentials move by less than ``tol``.

    Args:
        eps: target ε.
        a_log: (B, N) log-weights of α (``_LOG_ZERO`` for zero weights).
        b_log: (B, M) log-weights of β.
        C_xy: (B, N, M) costs between α and β.
        C_xx: (B, N, N) costs within α, or None when not debiasing.
        C_yy: (B, M, M) costs within β, or None.
        scaling, max_iter, tol: see :func:`sinkhorn_divergence`.

    Returns:
        (f_ab (B, N), g_ab (B, M), f_aa (B, N) or None, g_bb (B, M) or None, converged).
    """
    debias = C_xx is not None
    schedule = _epsilon_schedule(max(float(C_xy.amax()), eps), eps, scaling)

    # Initialisation: the soft-c-transform of the zero potential, at the first
    # temperature of each problem (Feydy 2020, Alg. 3.5 line 2).
    e = schedule[0]
    f_ab = _softmin_inplace(e, C_xy, b_log, dim=2)  # (B, N)
    g_ab = _softmin_inplace(e, C_xy, a_log, dim=1)  # (B, M)
    f_aa = _softmin_inplace(eps, C_xx, a_log) if debias else None  # (B, N)
    g_bb = _softmin_inplace(eps, C_yy, b_log) if debias else None  # (B, M)

    active = {"ab": True, "aa": debias, "bb": debias}
    for it in range(max_iter):
        e = schedule[min(it, len(schedule) - 1)]
        moved: dict[str, Tensor] = {}  # how far each problem's potentials moved, at ε only
        if active["ab"] and it < len(schedule) - 1:
            # annealing: symmetric update, both potentials from the previous pair, averaged
            ft = _softmin_inplace(e, C_xy, b_log + g_ab / e, dim=2)  # (B, N)
            gt = _softmin_inplace(e, C_xy, a_log + f_ab / e, dim=1)  # (B, M)
            f_ab, g_ab = 0.5 * (f_ab + ft), 0.5 * (g_ab + gt)
        elif active["ab"]:
            # at ε: alternating (Gauss-Seidel) updates, ~4x fewer iterations than averaged
            # ones on the slow modes of the cross problem
            ft = _softmin_inplace(e, C_xy, b_log + g_ab / e, dim=2)  # (B, N)
            gt = _softmin_inplace(e, C_xy, a_log + ft / e, dim=1)  # (B, M)
            moved["ab"] = torch.maximum((ft - f_ab).abs().amax(), (gt - g_ab).abs().amax())
            f_ab, g_ab = ft, gt
        if active["aa"]:
            ft = _softmin_inplace(eps, C_xx, a_log + f_aa / eps)  # (B, N)
            moved["aa"] = 0.5 * (ft - f_aa).abs().amax()
            f_aa = 0.5 * (f_aa + ft)
        if active["bb"]:
            gt = _softmin_inplace(eps, C_yy, b_log + g_bb / eps)  # (B, M)
            moved["bb"] = 0.5 * (gt - g_bb).abs().amax()
            g_bb = 0.5 * (g_bb + gt)
        if moved:
            for name, m in zip(moved, torch.stack(list(moved.values())).tolist()):  # one sync
                if m < tol:
                    active[name] = False
        if not any(active.values()):
            return f_ab, g_ab, f_aa, g_bb, True
    return f_ab, g_ab, f_aa, g_bb, False


class SinkhornLoss(nn.Module):
    """Mean (or per-pair) debiased Sinkhorn divergence as a module; see :func:`sinkhorn_divergence`.

    Args:
        eps: entropic regularisation ε (cost units; cost ½‖x − y‖² = 1 − cos on the sphere).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the batch.
        **kwargs: passed to :func:`sinkhorn_divergence` (cost, scaling, max_iter, tol, ...).
    """

    def __init__(self, eps: float = 0.05, reduction: Literal["mean", "sum", "none"] = "mean", **kwargs) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.eps, self.reduction, self.kwargs = eps, reduction, kwargs

    def forward(
        self, x: Tensor, a: Tensor, y: Tensor, b: Tensor,
        x_mask: Tensor | None = None, y_mask: Tensor | None = None,
    ) -> Tensor:
        s = sinkhorn_divergence(x, a, y, b, self.eps, x_mask=x_mask, y_mask=y_mask, **self.kwargs)  # (B,)
        if self.reduction == "mean":
            return s.mean()
        if self.reduction == "sum":
            return s.sum()
        return s

    def extra_repr(self) -> str:
        return f"eps={self.eps}, reduction={self.reduction!r}" + "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
