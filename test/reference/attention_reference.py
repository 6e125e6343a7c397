"""Fixtures for test/attention.test.ts: attention and its gradients computed by PyTorch in float64.

Run by the jest test as `/usr/bin/python3 attention_reference.py OUT_DIR` (Debian's torch 1.13,
which has no F.scaled_dot_product_attention: the reference is its definition,
softmax(q k^T * scale + mask) v, in float64 with autograd for the gradients). For each case it
writes OUT_DIR/<name>.json (shape and options) and the tensors as little-endian binaries:
q, k, v, dO as float32 (the inputs, drawn here) and o, lse, dq, dk, dv as float64 (computed from the
float32 inputs widened to float64). Causal masking hides key j from query i when
j > i + (nk - nq), as decoflow defines it (equal to is_causal when nq == nk).
"""
import json
import math
import os
import sys

import torch

CASES = [
    # name, batch, heads, nq, nk, dim, causal, scale (None: 1/sqrt(dim))
    ("tiny", 1, 1, 1, 1, 32, False, None),
    ("n17_d64", 1, 2, 17, 17, 64, False, None),
    ("n100_d32_causal", 2, 2, 100, 100, 32, True, None),
    ("n257_d80", 1, 2, 257, 257, 80, False, None),
    ("nq100_nk257_d64", 1, 1, 100, 257, 64, False, 0.3),
    ("nq100_nk257_d128_causal", 1, 1, 100, 257, 128, True, None),
    ("nq257_nk100_d64", 2, 1, 257, 100, 64, False, None),
    ("n1000_d64_causal", 1, 2, 1000, 1000, 64, True, None),
]


def reference(q, k, v, d_o, scale, causal):
    q, k, v = (t.double().requires_grad_(True) for t in (q, k, v))
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if causal:
        nq, nk = q.shape[-2], k.shape[-2]
        i = torch.arange(nq).unsqueeze(1)
        j = torch.arange(nk).unsqueeze(0)
        scores = scores.masked_fill(j > i + (nk - nq), float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    o = torch.matmul(torch.softmax(scores, dim=-1), v)
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), d_o.double())
    return o.detach(), lse.detach(), dq, dk, dv


def write(path, t, dtype):
    t.detach().to(dtype).contiguous().numpy().tofile(path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(20240613)
    names = []
    for name, b, h, nq, nk, d, causal, scale in CASES:
        scale = 1.0 / math.sqrt(d) if scale is None else scale
        q = torch.randn(b, h, nq, d, generator=g)
        k = torch.randn(b, h, nk, d, generator=g)
        v = torch.randn(b, h, nk, d, generator=g)
        d_o = torch.randn(b, h, nq, d, generator=g)
        o, lse, dq, dk, dv = reference(q, k, v, d_o, scale, causal)
        for key, t in (("q", q), ("k", k), ("v", v), ("dO", d_o)):
            write(os.path.join(out, f"{name}.{key}.bin"), t, torch.float32)
        for key, t in (("o", o), ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv)):
            write(os.path.join(out, f"{name}.{key}.bin"), t, torch.float64)
        meta = {"name": name, "batch": b, "heads": h, "nq": nq, "nk": nk, "dim": d, "causal": causal,
                "scale": scale, "torch": torch.__version__}
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(meta, f)
        names.append(name)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(names, f)


if __name__ == "__main__":
    main()
