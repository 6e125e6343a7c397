"""PyTorch peer of bench/cuda/bench_attention.cpp: torch.nn.functional.scaled_dot_product_attention
(bf16, CUDA) forward and backward at the same shapes (hidden 2048: 32 x 64 and 16 x 128 heads,
N = 1024, 4096, 16384, batch = 16384 / N, full and causal). Times with CUDA events, median over
batches of back-to-back runs; the backward alone is torch.autograd.grad on a retained graph.
Usage: attention_torch.py [--quick] [--backend default|flash|efficient|cudnn] [--json FILE]"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F


def time_ms(fn, quick):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    once = max(start.elapsed_time(end), 1e-3)
    per_batch = max(1, int((10.0 if quick else 25.0) / once))
    samples = []
    for _ in range(3 if quick else 5):
        start.record()
        for _ in range(per_batch):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / per_batch)
    samples.sort()
    return samples[len(samples) // 2]


def sdpa_context(name):
    if name == "default":
        import contextlib
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION}[name]
    return sdpa_kernel(backend)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backend", default="default")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("attention_torch.py: skipped: no CUDA device visible to PyTorch")
        return 0
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    print(f"PyTorch {torch.__version__} SDPA ({args.backend}) on {name}, bf16")
    print(f"{'heads':6} {'dim':5} {'N':6} {'batch':6} {'mask':7} {'fwd ms':>10} {'fwd TF/s':>10} {'bwd ms':>10} {'bwd TF/s':>10}")
    rows = []
    torch.manual_seed(0)
    for heads, dim in ((32, 64), (16, 128)):
        for n in (1024, 4096, 16384):
            for causal in (False, True):
                batch = 16384 // n
                q, k, v, do = (torch.randn(batch, heads, n, dim, device=dev, dtype=torch.bfloat16) for _ in range(4))
                scale = dim ** -0.5
                try:
                    with sdpa_context(args.backend):
                        with torch.no_grad():
                            fwd_ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale),
                                             args.quick)
                        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
                        o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal, scale=scale)
                        bwd_ms = time_ms(lambda: torch.autograd.grad(o, (qg, kg, vg), do, retain_graph=True), args.quick)
                        del o, qg, kg, vg
                except Exception as e:  # a backend that does not support this shape (or this PyTorch)
                    print(f"{heads:<6} {dim:<5} {n:<6} {batch:<6} {'causal' if causal else 'full':7} unsupported: {e}".splitlines()[0])
                    continue
                flop = 4.0 * batch * heads * n * n * dim * (0.5 if causal else 1.0)
                fwd_tf, bwd_tf = flop / (fwd_ms * 1e-3) / 1e12, 2.5 * flop / (bwd_ms * 1e-3) / 1e12
                print(f"{heads:<6} {dim:<5} {n:<6} {batch:<6} {'causal' if causal else 'full':7} {fwd_ms:10.3f} {fwd_tf:10.1f} {bwd_ms:10.3f} {bwd_tf:10.1f}",
                      flush=True)
                rows.append({"heads": heads, "dim": dim, "n": n, "batch": batch, "causal": causal, "forward_ms": fwd_ms,
                             "backward_ms": bwd_ms, "forward_tflops": fwd_tf, "backward_tflops": bwd_tf})
                del q, k, v, do
                torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "backend": args.backend, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
