"""Benchmark: debiased Sinkhorn divergence, ours vs geomloss vs POT, forward + backward.

B pairs of N vs M unit vectors in D dims (defaults: 32 pairs of 1,000 vs 10 points in
D = 384, ε = 0.05, cost ½‖x − y‖² = 1 − cos). Every solver returns S_ε per pair and its
gradient with respect to x; values are compared with a tightly converged float64 run of
ours (checked against POT in tests/test_losses.py).

    python bench/sinkhorn.py                     # CPU
    python bench/sinkhorn.py --device cuda       # GPU when present
    python bench/sinkhorn.py --B 8 --N 200       # smaller

Peers:
  geomloss  SamplesLoss("sinkhorn", p=2, blur=√ε, debias=True, backend="tensorized"),
            at its default scaling 0.5 and at our scaling 0.9 (it runs a fixed schedule;
            the 'online'/'multiscale' backends need pykeops and are skipped without it).
  POT       ot.batch.solve_batch(method="log_sinkhorn", reg_type="kl", grad="envelope")
            (batched, torch backend), three solves (α↔β, α↔α, β↔β) per batch.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from typing import Callable

import torch

from pipeline.model.losses import cost_matrix, sinkhorn_divergence


def make_inputs(B: int, N: int, M: int, D: int, device: str, seed: int = 0):
    """Clustered unit vectors (like phrase embeddings) and uniform-ish weights."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(B, 8, D, generator=g)
    x = centers[:, torch.randint(0, 8, (N,), generator=g)] + 0.7 * torch.randn(B, N, D, generator=g)
    y = centers[:, torch.randint(0, 8, (M,), generator=g)] + 0.7 * torch.randn(B, M, D, generator=g)
    x, y = torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(y, dim=-1)
    a = torch.rand(B, N, generator=g) + 0.5
    b = torch.rand(B, M, generator=g) + 0.5
    a, b = a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
    return [t.to(device) for t in (x, a, y, b)]


def pot_divergence(x, a, y, b, eps: float, tol: float = 1e-5, max_iter: int = 1000) -> torch.Tensor:
    """S_ε with POT's batched log-domain Sinkhorn (value with the ε·KL term, envelope grads)."""
    import ot

    def ot_eps(x, a, y, b):
        C = cost_matrix(x, y)  # ½‖x − y‖², same as 0.5 * ot.batch.dist_batch(x, y)
        res = ot.batch.solve_batch(
            C, eps, a, b, method="log_sinkhorn", reg_type="kl", max_iter=max_iter, tol=tol, grad="envelope"
        )
        return res.value

    return ot_eps(x, a, y, b) - 0.5 * ot_eps(x, a, x, a) - 0.5 * ot_eps(y, b, y, b)


def timeit(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int, warmup: bool = True
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Median seconds of forward + backward; returns (time, values (B,), grad of x)."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for _ in range(repeats + int(warmup)):
        xr = x.detach().clone().requires_grad_()
        sync()
        t0 = time.perf_counter()
        v = fn(xr)
        v.sum().backward()
        sync()
        times.append(time.perf_counter() - t0)
    times = times[int(warmup):]
    return sorted(times)[len(times) // 2], v.detach(), xr.grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--N", type=int, default=1000)
    parser.add_argument("--M", type=int, default=10)
    parser.add_argument("--D", type=int, default=384)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-pot", action="store_true", help="POT is slow on CPU at this size (timed once)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    eps, dev = args.eps, args.device
    x, a, y, b = make_inputs(args.B, args.N, args.M, args.D, dev)

    from geomloss import SamplesLoss

    solvers: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "ours (scaling 0.9)": lambda xr: sinkhorn_divergence(xr, a, y, b, eps),
        "ours (scaling 0.5)": lambda xr: sinkhorn_divergence(xr, a, y, b, eps, scaling=0.5),
    }
    for s in (0.5, 0.9):
        loss = SamplesLoss("sinkhorn", p=2, blur=eps**0.5, debias=True, scaling=s, backend="tensorized")
        solvers[f"geomloss tensorized (scaling {s})"] = lambda xr, loss=loss: loss(a, xr, b, y)
    if importlib.util.find_spec("pykeops") is not None:
        loss = SamplesLoss("sinkhorn", p=2, blur=eps**0.5, debias=True, scaling=0.9, backend="online")
        solvers["geomloss online/keops (scaling 0.9)"] = lambda xr, loss=loss: loss(a, xr, b, y)
    else:
        print("geomloss 'online'/'multiscale' backends skipped: pykeops is not installed")
    if not args.skip_pot:
        solvers["POT batch log_sinkhorn (tol 1e-5)"] = lambda xr: pot_divergence(xr, a, y, b, eps)

    # reference: ours in float64, converged to 1e-10
    x64, a64, y64, b64 = (t.double() for t in (x, a, y, b))
    x64.requires_grad_()
    ref = sinkhorn_divergence(x64, a64, y64, b64, eps, tol=1e-10, max_iter=100_000)
    ref.sum().backward()
    ref, ref_grad = ref.detach().float(), x64.grad.float()

    print(f"\nS_eps, B={args.B} pairs of N={args.N} vs M={args.M} points, D={args.D}, eps={eps}, "
          f"device={dev} ({torch.get_num_threads()} CPU threads), forward+backward, median of {args.repeats}")
    header = f"{'solver':40s} {'time s':>8s} {'vs ours':>8s} {'S[0]':>10s} {'S[1]':>10s} {'max|S-ref|':>11s} {'max|grad-ref|':>13s}"
    print(header + "\n" + "-" * len(header))
    print(f"{'reference (ours, float64, tol 1e-10)':40s} {'':>8s} {'':>8s} {ref[0].item():10.6f} {ref[1].item():10.6f}")
    base = None
    for name, fn in solvers.items():
        slow = name.startswith("POT")
        t, v, grad = timeit(fn, x, 1 if slow else args.repeats, warmup=not slow)
        base = base or t
        print(f"{name:40s} {t:8.3f} {t / base:7.2f}x {v[0].item():10.6f} {v[1].item():10.6f} "
              f"{(v.float() - ref).abs().max().item():11.2e} {(grad.float() - ref_grad).abs().max().item():13.2e}")


if __name__ == "__main__":
    main()
