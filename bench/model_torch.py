"""PyTorch peer of bench/model.js: one DFM-DiT training step (zero_grad, forward, DFM loss,
backward, clip_grad_norm_, AdamW, EMA) of the reference model (test/reference/dit_reference.py)
with PyTorch 2.x's fused attention, f32 on the CPU. Argument: a JSON list of rows
{name, config, batch}. Prints one JSON object with ms per step per row."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "reference"))
import dit_reference as ref  # noqa: E402
from torch_common import emit, median_ms, setup  # noqa: E402


def main():
    threads = setup()
    ref.USE_SDPA = True
    rows = []
    for row in json.loads(sys.argv[1]):
        cfg, B = row["config"], row["batch"]
        model = ref.DFMDiT(cfg)
        g = torch.Generator().manual_seed(0)
        S = cfg["stages"]
        xs = [torch.randn(B, cfg["channels"], H, W, generator=g) for (H, W) in model.sizes]
        vs = [torch.randn(B, cfg["channels"], H, W, generator=g) for (H, W) in model.sizes]
        t = torch.rand(B, S, generator=g)
        mask = torch.ones(B, S)
        labels = torch.randint(0, cfg.get("numClasses", 0) + 1, (B,), generator=g, dtype=torch.int32)
        params = list(model.parameters())
        opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
        ema = [p.detach().clone() for p in params]

        def step():
            with torch.enable_grad():
                opt.zero_grad(set_to_none=True)
                loss = ref.dfm_loss(model(xs, t, mask, labels), vs, mask)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.9999)

        rows.append({"name": row["name"], "ms": median_ms(step, warmup=2, min_runs=5, min_ms=2000, max_runs=20)})
    emit({"threads": threads, "rows": rows})


if __name__ == "__main__":
    main()
