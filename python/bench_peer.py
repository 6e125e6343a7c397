"""The PyTorch peer of `decoflow bench --compare torch` (lib/bench-peer.ts starts it).

Reads one JSON request per line on stdin and answers each with one JSON line on stdout:
  {"id": 0, "hello": true}                   -> {"id": 0, "torch": "2.x", "threads": T, "cuda": bool}
  {"id": i, "row": {...}, "timing": {...}}   -> {"id": i, "ms": [...]} or {"id": i, "error": "..."}
A row is the same computation as decoflow's row of that id (lib/bench-rows.ts), in PyTorch 2.x, with
DECOFLOW_THREADS threads on DECOFLOW_DEVICE; timing is the harness's: `warmup` untimed calls, then
timed calls until `budgetMs` has passed and at least `minReps` were made (at most `maxReps`).
The DiT rows use the reference model the tests check decoflow against (test/reference/dit_reference.py,
shipped with the package), with PyTorch's fused attention; the Frechet and precision/recall rows the
metrics' reference (test/reference/eval_reference.py, shipped too).
"""
import gc
import importlib
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

DEVICE = os.environ.get("DECOFLOW_DEVICE", "cpu")
ROOT = os.environ.get("DECOFLOW_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def sync():
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def measure(fn, timing):
    for _ in range(timing["warmup"]):
        fn()
    sync()
    samples = []
    start = time.perf_counter()
    while len(samples) < timing["maxReps"]:
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= timing["minReps"] and (time.perf_counter() - start) * 1e3 >= timing["budgetMs"]:
            break
    return samples


def randn(shape, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(device=DEVICE, dtype=dtype)


def gemm(row):
    a, b = randn((row["m"], row["k"]), 1), randn((row["k"], row["n"]), 2)
    return lambda: torch.matmul(a, b)


def attention(row):
    dtype = DTYPES[row["dtype"]]
    q, k, v, do = (randn(row["shape"], seed, dtype) for seed in (1, 2, 3, 4))
    causal = row["causal"]
    if row["pass"] == "fwd":
        def forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return forward
    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

    def forward_backward():
        with torch.enable_grad():
            o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
            torch.autograd.grad(o, (qg, kg, vg), do)
    return forward_backward


def interpolate(x, factor):
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def laplacian_decompose(x, stages):
    downs = [x]
    for _ in range(stages - 1):
        downs.append(interpolate(downs[-1], 0.5))
    levels = [downs[-1]]
    for s in range(stages - 2, -1, -1):
        levels.append(downs[s] - interpolate(downs[s + 1], 2))
    return levels


def laplacian_recompose(levels):
    img = levels[0]
    for level in levels[1:]:
        img = interpolate(img, 2) + level
    return img


def pyramid(row):
    x, stages = randn(row["shape"], 1), row["stages"]
    return lambda: laplacian_recompose(laplacian_decompose(x, stages))


def reference(name):
    """A module of test/reference (the PyTorch references decoflow's tests check against, shipped)."""
    folder = os.path.join(ROOT, "test", "reference")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def reference_model(row):
    """The reference DiT on the device; compiled when the row says so (torch.compile's default mode)."""
    ref = reference("dit_reference")
    ref.USE_SDPA = True
    model = ref.DFMDiT(row["config"]).to(DEVICE)
    return ref, (torch.compile(model) if row.get("compile") else model), model


def autocast(row):
    """bf16 autocast on a GPU when the row runs decoflow in bf16 (PyTorch's mixed precision), else nothing."""
    if DEVICE != "cpu" and row.get("precision") == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def on_device(*tensors):
    return [t.to(DEVICE) for t in tensors]


def train(row):
    cfg, B = row["config"], row["batch"]
    ref, model, plain = reference_model(row)
    S = cfg["stages"]
    g = torch.Generator().manual_seed(0)
    xs = on_device(*[torch.randn(B, cfg["channels"], H, W, generator=g) for (H, W) in plain.sizes])
    vs = on_device(*[torch.randn(B, cfg["channels"], H, W, generator=g) for (H, W) in plain.sizes])
    t, mask = on_device(torch.rand(B, S, generator=g), torch.ones(B, S))
    (labels,) = on_device(torch.randint(0, cfg.get("numClasses", 0) + 1, (B,), generator=g, dtype=torch.int32))
    params = list(plain.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]

    def step():
        with torch.enable_grad():
            opt.zero_grad(set_to_none=True)
            with autocast(row):
                loss = ref.dfm_loss(model(xs, t, mask, labels), vs, mask)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.9999)
    return step


def sample(row):
    """decoflow's sampler (the stage schedule it uses, given by the harness): per step one forward pass
    (two with guidance: v_uncond + cfg (v_cond - v_uncond), the null class numClasses) with the later
    stages masked and an Euler update of the active stages; then the recomposition."""
    cfg, n = row["config"], row["n"]
    _, model, plain = reference_model(row)
    S = cfg["stages"]
    times, newest = row["schedule"]["times"], row["schedule"]["newestStage"]
    w = float(row.get("cfg", 1))
    labels = torch.tensor(row["labels"], dtype=torch.int32, device=DEVICE) if row.get("labels") is not None else None
    null = torch.full((n,), cfg.get("numClasses", 0), dtype=torch.int32, device=DEVICE)

    def run():
        with torch.no_grad(), autocast(row):
            g = torch.Generator().manual_seed(1)
            xs = on_device(*[torch.randn(n, cfg["channels"], H, W, generator=g) for (H, W) in plain.sizes])
            for i in range(len(newest)):
                active = newest[i]
                mask = torch.tensor([[1.0 if s <= active else 0.0 for s in range(S)]], device=DEVICE).expand(n, S)
                t = torch.tensor([times[i]], dtype=torch.float32, device=DEVICE).expand(n, S)
                v = model(xs, t, mask, labels)
                if w != 1 and labels is not None:
                    u = model(xs, t, mask, null)
                    v = [ui + w * (vi - ui) for vi, ui in zip(v, u)]
                for s in range(active + 1):
                    xs[s] = xs[s] + (times[i + 1][s] - times[i][s]) * v[s].float()
            return laplacian_recompose(xs)
    return run


def random_cov(d, k):
    a = torch.randn(d, k)
    return (a @ a.T / k).double()


def descriptors(level, k=64, p=7):
    nimg, c, h, w = level.shape
    patches = F.unfold(level, p)  # [N, C*p*p, L]
    idx = torch.randint(0, patches.shape[2], (nimg, 1, k)).expand(-1, patches.shape[1], -1)
    desc = torch.gather(patches, 2, idx).permute(0, 2, 1).reshape(-1, c, p * p)
    desc = (desc - desc.mean(dim=(0, 2), keepdim=True)) / desc.std(dim=(0, 2), keepdim=True)
    return desc.reshape(desc.shape[0], -1)


def swd_pyramid(x, levels=3):
    out = []
    for _ in range(levels - 1):
        down = F.avg_pool2d(x, 2)
        out.append(x - F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False))
        x = down
    return out + [x]


def swd(a, b, projections=512):
    total = 0.0
    for la, lb in zip(swd_pyramid(a), swd_pyramid(b)):
        da, db = descriptors(la), descriptors(lb)
        dirs = torch.randn(da.shape[1], projections)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa, _ = torch.sort(da @ dirs, dim=0)
        pb, _ = torch.sort(db @ dirs, dim=0)
        total += float((pa - pb).abs().mean())
    return total / 3 * 1000


def evaluation(row):
    """The Frechet distance and precision/recall of test/reference/eval_reference.py; the SWD above."""
    ev, size = reference("eval_reference"), row["size"]
    if row["metric"] == "frechet":
        ca, cb = random_cov(size, size + 50), random_cov(size, size + 60)
        ma, mb = torch.randn(size).double(), torch.randn(size).double()
        return lambda: ev.frechet(ma, ca, mb, cb)
    a, b = torch.randn(size, 1, 32, 32), torch.randn(size, 1, 32, 32)
    if row["metric"] == "swd":
        return lambda: swd(a, b)
    return lambda: ev.precision_recall(ev.pix(a, 16), ev.pix(b, 16), 3)


BUILDERS = {"gemm": gemm, "attention": attention, "pyramid": pyramid, "train": train, "sample": sample, "eval": evaluation}


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    threads = int(os.environ.get("DECOFLOW_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    for line in sys.stdin:
        req = json.loads(line)
        rid = req["id"]
        if req.get("hello"):
            send({"id": rid, "torch": torch.__version__, "threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()})
            continue
        try:
            row = req["row"]
            if DEVICE != "cpu" and not torch.cuda.is_available():
                raise RuntimeError("this PyTorch has no usable CUDA device")
            send({"id": rid, "ms": measure(BUILDERS[row["kind"]](row), req["timing"])})
        except Exception as e:  # the row fails, the peer goes on
            send({"id": rid, "error": "%s: %s" % (type(e).__name__, e)})
        gc.collect()
        if DEVICE != "cpu" and torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
