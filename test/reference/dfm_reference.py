#!/usr/bin/env python3
"""PyTorch reference of decoflow's DFM training loss (the paper's Algorithm 1, steps 3-5), written
independently of the C++ code: the Laplacian pyramid with F.interpolate (bilinear, half-pixel
centres, no antialias, as the DFM authors), the forward process x_s = t_s X_s + (1 - t_s) N_s with
later stages zeroed, the targets v_s = X_s - N_s, the reference DiT, and the masked loss.

  dfm_reference.py loss CKPT INPUTS OUT [WEIGHTS]
     CKPT: a decoflow checkpoint; INPUTS: images [B,C,H,W], noise.{s}, t [B,S], mask [B,S], labels [B]
     (the draws of one decoflow training step); OUT gets the loss and the per-stage levels.
     WEIGHTS: the per-stage loss weights as a JSON list (default: all 1).
"""
import sys

import torch
import torch.nn.functional as F

from dit_reference import DFMDiT, dfm_loss, read_safetensors, write_safetensors
import json


def laplacian_pyramid(x, stages):
    """Coarse to fine: X_1 = down^(S-1)(x); X_s = down^(S-s)(x) - up(down^(S-s+1)(x))."""
    downs = [x]
    for _ in range(stages - 1):
        downs.append(F.interpolate(downs[-1], scale_factor=0.5, mode="bilinear", align_corners=False))
    downs = downs[::-1]  # coarse to fine
    levels = [downs[0]]
    for s in range(1, stages):
        up = F.interpolate(downs[s - 1], scale_factor=2.0, mode="bilinear", align_corners=False)
        levels.append(downs[s] - up)
    return levels


def main(ckpt, inputs, out, weights=None):
    tensors, meta = read_safetensors(ckpt)
    cfg = json.loads(meta["config"])
    model = DFMDiT(cfg)
    model.load_state_dict({k: v for k, v in tensors.items() if k in model.state_dict()}, strict=True)
    b, _ = read_safetensors(inputs)
    S = cfg["stages"]
    t, mask = b["t"], b["mask"]
    X = laplacian_pyramid(b["images"].double(), S)
    xs, vs = [], []
    for s in range(S):
        N = b[f"noise.{s}"].double()
        ts = t[:, s].double()[:, None, None, None]
        m = mask[:, s].double()[:, None, None, None]
        xs.append((m * (ts * X[s] + (1 - ts) * N)).float())  # later stages: zero input
        vs.append((m * (X[s] - N)).float())
    with torch.no_grad():
        outs = model(xs, t, mask, b["labels"] if cfg.get("numClasses", 0) > 0 else None)
        loss = dfm_loss(outs, vs, mask, weights)
    res = {"loss": torch.tensor([float(loss)])}
    for s in range(S):
        res[f"level.{s}"] = X[s].float()
    write_safetensors(out, res)


if __name__ == "__main__":
    if sys.argv[1] != "loss":
        sys.exit(f"unknown command {sys.argv[1]}")
    main(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]) if len(sys.argv) > 5 else None)
