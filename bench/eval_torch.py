"""The peer of bench/eval.js: the same metric computations in PyTorch (see bench/eval.js)."""
import sys

import torch
import torch.nn.functional as F

from torch_common import emit, median_ms, setup

threads = setup()
n = int(sys.argv[1])
out = {"threads": threads}


def random_cov(d, k):
    a = torch.randn(d, k)
    return (a @ a.T / k).double()


def frechet(ma, ca, mb, cb):
    w, v = torch.linalg.eigh(ca)
    root = (v * w.clamp(min=0).sqrt()) @ v.T
    m = root @ cb @ root
    mu = torch.linalg.eigvalsh(0.5 * (m + m.T))
    return ((ma - mb) ** 2).sum() + ca.trace() + cb.trace() - 2 * mu.clamp(min=0).sqrt().sum()


for d in (256, 768):
    ca, cb = random_cov(d, d + 50), random_cov(d, d + 60)
    ma, mb = torch.randn(d).double(), torch.randn(d).double()
    out[f"frechet{d}"] = median_ms(lambda: frechet(ma, ca, mb, cb), min_runs=3, min_ms=500)


def descriptors(level, k=64, p=7):
    nimg, c, h, w = level.shape
    patches = F.unfold(level, p)  # [N, C*p*p, L]
    idx = torch.randint(0, patches.shape[2], (nimg, 1, k)).expand(-1, patches.shape[1], -1)
    desc = torch.gather(patches, 2, idx).permute(0, 2, 1).reshape(-1, c, p * p)
    desc = (desc - desc.mean(dim=(0, 2), keepdim=True)) / desc.std(dim=(0, 2), keepdim=True)
    return desc.reshape(desc.shape[0], -1)


def pyramid(x, levels=3):
    out = []
    for _ in range(levels - 1):
        down = F.avg_pool2d(x, 2)
        out.append(x - F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False))
        x = down
    return out + [x]


def swd(a, b, projections=512):
    total = 0.0
    for la, lb in zip(pyramid(a), pyramid(b)):
        da, db = descriptors(la), descriptors(lb)
        dirs = torch.randn(da.shape[1], projections)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa, _ = torch.sort(da @ dirs, dim=0)
        pb, _ = torch.sort(db @ dirs, dim=0)
        total += float((pa - pb).abs().mean())
    return total / 3 * 1000


def pr(a, b, k=3):
    fa, fb = F.avg_pool2d(a, 2).flatten(1), F.avg_pool2d(b, 2).flatten(1)

    def radii(f):
        d = torch.cdist(f, f)
        d.fill_diagonal_(float("inf"))
        return d.kthvalue(k, dim=1).values

    ra, rb = radii(fa), radii(fb)
    precision = (torch.cdist(fb, fa) <= ra[None, :]).any(dim=1).float().mean()
    recall = (torch.cdist(fa, fb) <= rb[None, :]).any(dim=1).float().mean()
    return precision, recall


a, b = torch.randn(n, 1, 32, 32), torch.randn(n, 1, 32, 32)
out["swd"] = median_ms(lambda: swd(a, b), warmup=1, min_runs=3, min_ms=500)
out["pr"] = median_ms(lambda: pr(a, b), warmup=1, min_runs=3, min_ms=500)
emit(out)
