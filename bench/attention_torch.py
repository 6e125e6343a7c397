"""PyTorch peer of bench/attention.js: scaled_dot_product_attention forward and forward+backward
(f32, CPU), at the shapes given as B,H,N,D arguments. Prints one JSON object: ms per row."""
import sys

import torch
import torch.nn.functional as F

from torch_common import emit, median_ms, setup


def main():
    threads = setup()
    causal = "--causal" in sys.argv
    shapes = [tuple(int(x) for x in a.split(",")) for a in sys.argv[1:] if not a.startswith("--")]
    rows = []
    for b, h, n, d in shapes:
        g = torch.Generator().manual_seed(0)
        q, k, v, do = (torch.randn(b, h, n, d, generator=g) for _ in range(4))

        def forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

        def forward_backward():
            with torch.enable_grad():
                o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
                dq, dk, dv = torch.autograd.grad(o, (qg, kg, vg), do)

        rows.append({"shape": [b, h, n, d], "forward_ms": median_ms(forward),
                     "forward_backward_ms": median_ms(forward_backward)})
    emit({"threads": threads, "causal": causal, "rows": rows})


if __name__ == "__main__":
    main()
