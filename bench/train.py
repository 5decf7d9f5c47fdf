"""Training throughput: EventForecaster (NLL + λ·Sinkhorn) vs its baselines, side by side.

    python bench/train.py                 # tiny preset on CPU (+ small preset, bf16, on CUDA when present)
    python bench/train.py --steps 20 --batch-size 16 --points 256
    python bench/train.py --threads 2 --long-days 50 --long-points 128   # + the T = 50 rows (issue 15)

Rows (same synthetic batches with the dataset's shapes: T days × N points × D=384, S=28
day stats, 3–10 target phrases drawn from the closed phrase vocabulary; a sequence's points recur
from day to day as a country's phrases do), at T = ``--days`` and at T = ``--long-days``:

* ``ours λ=1``      full training step: day pooling → T5 → NLL + Sinkhorn head, backward, AdamW;
* ``ours λ=0``      the NLL-only ablation (no Sinkhorn term);
* ``per-point``     ``ours λ=1`` with the day pooling as first written (keys and values of every point
                    slot, SDPA over tiny heads): the peer of the folded pooler that maps each distinct
                    point once (issue 15);
* ``plain T5``      T5ForConditionalGeneration alone on precomputed encoder inputs (no pooling, no head);
* ``determ.``       ``ours λ=1`` under torch's deterministic algorithms (``train.deterministic``, the default
                    of ``train``): what bit-reproducible training costs.

Reports samples/s, target tokens/s, ratios to ``ours λ=1`` and, on CUDA, model FLOP/s
(≈ 6 × parameters × tokens each side) as a share of the GPU's bf16 dense peak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
import warnings

import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore", message="sinkhorn_divergence did not converge")

from pipeline.core.config import ModelConfig  # noqa: E402
from pipeline.model.forecaster import DayPooler, EventForecaster  # noqa: E402
from pipeline.cameo.phrases import make_phrase  # noqa: E402
from pipeline.model.tokenizer import IGNORE_INDEX, encode_targets  # noqa: E402
from pipeline.model.train import deterministic_algorithms  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "4090": 165e12}
"""Dense bf16 tensor-core peak FLOP/s by GPU name fragment."""

CODES = ["010", "020", "036", "040", "042", "043", "051", "057", "111", "112", "120", "138", "173", "190", "193"]
COUNTRIES = ["US", "CH", "RS", "UP", "IS", "IR", "UK", "FR", "GM", "IN", None]


def synthetic_batch(B: int, T: int, N: int, D: int = 384, S: int = 28, seed: int = 0,
                    vocabulary: int = 3) -> dict:
    """A batch with ``pipeline.features.dataset.collate``'s keys/shapes and realistic phrase targets.

    As in the lake, a country's phrases recur from day to day: each sequence draws its T days of
    N points from its own vocabulary of ``vocabulary`` × N phrase vectors (Zipf-weighted, without
    replacement within a day); ``vocabulary=0`` makes every point distinct.
    """
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    if vocabulary:
        V = vocabulary * N
        zipf = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
        picks = torch.stack([torch.multinomial(zipf, N, replacement=False, generator=g)
                             for _ in range(B * T)]).reshape(B, T, N)  # (B, T, N) into each row's vocabulary
        vocab = F.normalize(torch.randn(B, V, D, generator=g), dim=-1)  # (B, V, D)
        points = vocab.gather(1, picks.reshape(B, T * N, 1).expand(-1, -1, D)).reshape(B, T, N, D)
    else:
        points = F.normalize(torch.randn(B, T, N, D, generator=g), dim=-1)
    weights = torch.rand(B, T, N, generator=g)
    weights = weights / weights.sum(-1, keepdim=True)
    phrases = [[make_phrase(rng.choice(COUNTRIES), rng.choice(CODES), rng.choice(COUNTRIES))
                for _ in range(rng.randint(3, 10))] for _ in range(B)]
    M = max(map(len, phrases))
    mask = torch.tensor([[j < len(p) for j in range(M)] for p in phrases])
    return {"points": points, "point_weights": weights, "point_mask": torch.ones(B, T, N, dtype=torch.bool),
            "day_stats": torch.randn(B, T, S, generator=g), "day_mask": torch.ones(B, T, dtype=torch.bool),
            "target_points": F.normalize(torch.randn(B, M, D, generator=g), dim=-1),
            "target_weights": mask.float() / mask.sum(1, keepdim=True), "target_mask": mask,
            "target_phrases": phrases, "target_codes": [[] for _ in range(B)], "country": ["US"] * B,
            "target_date": [dt.date(2025, 6, 1)] * B}


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, batches, warmup: int, device: torch.device) -> float:
    """Seconds per step (median of the timed steps after ``warmup`` untimed ones)."""
    for b in batches[:warmup]:
        step(b)
    times = []
    for b in batches[warmup:]:
        sync(device)
        t = time.perf_counter()
        step(b)
        sync(device)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def bench_preset(preset: str, device: torch.device, B: int, T: int, N: int, steps: int, warmup: int) -> list[dict]:
    bf16 = device.type == "cuda"
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16) if bf16 else torch.autocast("cpu", enabled=False)
    batches = [to_device(synthetic_batch(B, T, N, seed=i), device) for i in range(warmup + steps)]
    phrases = sorted({p for b in batches for ps in b["target_phrases"] for p in ps})
    model = EventForecaster.build(ModelConfig(preset=preset), 384, 28, phrases, seed=0).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = sum(int((encode_targets(model.tokenizer, b["target_phrases"], 128).labels != IGNORE_INDEX).sum())
                 for b in batches[warmup:]) / steps  # target tokens per step

    def ours(lam: float):
        def step(b):
            with amp:
                out = model(b, sinkhorn_lambda=lam, sinkhorn_eps=0.05)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return step

    # plain T5: the same T5 on precomputed encoder inputs, labels pre-tokenised: no pooling, no Sinkhorn head
    t5 = model.t5
    d = t5.config.d_model
    plain_inputs = {id(b): (torch.randn(B, T * model.cfg.tokens_per_day, d, device=device),
                            encode_targets(model.tokenizer, b["target_phrases"], 128).labels.to(device))
                    for b in batches}
    opt_t5 = torch.optim.AdamW(t5.parameters(), lr=1e-4)

    def plain(b):
        emb, labels = plain_inputs[id(b)]
        with amp:
            loss = t5(inputs_embeds=emb, labels=labels).loss
        opt_t5.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(t5.parameters(), 1.0)
        opt_t5.step()

    enc_p = sum(p.numel() for p in t5.encoder.parameters())
    dec_p = sum(p.numel() for p in t5.decoder.parameters()) + t5.lm_head.weight.numel()
    pool_p = sum(p.numel() for p in model.pooler.parameters()) + sum(p.numel() for p in model.point_head.parameters())
    enc_tokens = B * T * model.cfg.tokens_per_day
    flops_t5 = 6 * (enc_p * enc_tokens + dec_p * tokens)
    flops_ours = flops_t5 + 6 * pool_p * B * T * N  # the point projection dominates the pooling cost

    def per_point(step):  # the first DayPooler: keys and values of every point slot, then SDPA
        def run(b):
            forward = DayPooler.forward
            DayPooler.forward = per_point_pooling
            try:
                step(b)
            finally:
                DayPooler.forward = forward
        return run

    def deterministic(step):
        def run(b):
            with deterministic_algorithms(True):
                step(b)
        return run

    rows = []
    for name, fn, flops in (("ours λ=1", ours(1.0), flops_ours), ("ours λ=0", ours(0.0), flops_ours),
                            ("per-point", per_point(ours(1.0)), flops_ours), ("plain T5", plain, flops_t5),
                            ("determ.", deterministic(ours(1.0)), flops_ours)):
        s = time_steps(fn, batches, warmup, device)
        rows.append({"preset": preset, "device": device.type + (" bf16" if bf16 else " fp32"), "name": name,
                     "T": T, "N": N, "step_s": s, "samples_s": B / s, "tokens_s": tokens / s, "flops_s": flops / s})
    return rows


def per_point_pooling(self, points, weights, point_mask, day_stats):
    """``DayPooler.forward`` before issue 15: ``kv_proj(point_in(x))`` for every point slot and
    ``scaled_dot_product_attention`` over (B·T, H, N, d_h) — the peer of the folded, deduplicated pooler."""
    B, T, N, _ = points.shape
    Q, H = self.queries.shape[0], self.num_heads
    k, v = self.kv_proj(self.point_in(points)).chunk(2, dim=-1)
    d = k.shape[-1]
    k = k.reshape(B * T, N, H, d // H).transpose(1, 2)
    v = v.reshape(B * T, N, H, d // H).transpose(1, 2)
    q = self.q_proj(self.queries).reshape(1, Q, H, d // H).transpose(1, 2).expand(B * T, H, Q, d // H)
    has = point_mask.any(-1)
    bias = torch.where(point_mask, torch.log(weights.float().clamp_min(1e-12)), float("-inf"))
    bias = torch.where(has[..., None], bias, 0.0).to(q.dtype)
    pooled = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.reshape(B * T, 1, 1, N))
    pooled = self.out_proj(pooled.transpose(1, 2).reshape(B, T, Q, d))
    pooled = torch.where(has[..., None, None], pooled, self.empty.to(pooled.dtype))
    day = self.stats_proj(day_stats) + self.day_pos(torch.arange(T - 1, -1, -1, device=points.device))
    return self.dropout(self.norm(pooled + day[:, :, None, :])).reshape(B, T * Q, d)


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per row")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--days", type=int, default=7, help="T")
    ap.add_argument("--points", type=int, default=64, help="N points per day")
    ap.add_argument("--long-days", type=int, default=50, help="T of the long-context CPU rows (0: skip them)")
    ap.add_argument("--long-points", type=int, default=128, help="N of the long-context CPU rows")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--small-batch-size", type=int, default=32, help="batch of the small preset on CUDA")
    ap.add_argument("--small-days", type=int, default=50)
    ap.add_argument("--small-points", type=int, default=256)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    cpu = torch.device("cpu")
    rows = bench_preset("tiny", cpu, args.batch_size, args.days, args.points, args.steps, args.warmup)
    if args.long_days:  # issue 15: T = 50 on 2 CPU cores, goal ≥ 20 samples/s
        rows += bench_preset("tiny", cpu, args.batch_size, args.long_days, args.long_points, args.steps, args.warmup)
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        rows += bench_preset("tiny", cuda, args.batch_size, args.days, args.points, args.steps, args.warmup)
        rows += bench_preset("small", cuda, args.small_batch_size, args.small_days, args.small_points,
                             args.steps, args.warmup)
        peak = peak_flops(cuda)
        peak_tf = peak / 1e12 if peak else float("nan")
        print(f"GPU: {torch.cuda.get_device_name(cuda)}; bf16 dense peak {peak_tf:.0f} TFLOP/s")
    else:
        peak = None
        print("no CUDA device: CPU rows only (the small preset runs on a GPU)")
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"tiny: B={args.batch_size} T={args.days} N={args.points}; small: B={args.small_batch_size} "
          f"T={args.small_days} N={args.small_points}\n")

    head = (f"{'preset':<6} {'device':<10} {'T':>3} {'N':>4} {'row':<9} {'ms/step':>9} {'samples/s':>10} "
            f"{'tokens/s':>10} {'vs λ=1':>7}")
    head += f" {'TFLOP/s':>8} {'% peak':>7}" if peak else ""
    print(head)
    print("-" * len(head))
    for r in rows:
        ref = next(x for x in rows if x["preset"] == r["preset"] and x["device"] == r["device"]
                   and x["T"] == r["T"] and x["name"] == "ours λ=1")
        line = (f"{r['preset']:<6} {r['device']:<10} {r['T']:>3} {r['N']:>4} {r['name']:<9} {r['step_s'] * 1e3:>9.1f} "
                f"{r['samples_s']:>10.1f} {r['tokens_s']:>10.0f} {ref['step_s'] / r['step_s']:>6.2f}x")
        if peak:
            on_gpu = r["device"].startswith("cuda")
            line += (f" {r['flops_s'] / 1e12:>8.2f} {100 * r['flops_s'] / peak:>6.1f}%" if on_gpu else "")
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
