"""PyTorch reference for test/eval.test.ts (run by the test with /usr/bin/python3, torch >= 1.13).

Usage: eval_reference.py DIR. DIR/manifest.json lists
  eigen:    [{name, n}]          DIR/<name>.m.bin: a symmetric f32 [n, n]
  frechet:  [{name, d}]          DIR/<name>.{ma,ca,mb,cb}.bin: f32 means [d] and covariances [d, d]
  features: [{name, shape}]      DIR/<name>.x.bin: f32 images [N, C, H, W]
  pr:       [{name, a, b, k, feature}]  precision/recall of generated images <b>.x.bin against real <a>.x.bin
Writes DIR/results.json with, computed in float64:
  eigen[name]    eigenvalues, ascending (torch.linalg.eigvalsh)
  frechet[name]  |ma - mb|^2 + tr A + tr B - 2 tr sqrt(A^1/2 B A^1/2), A^1/2 from torch.linalg.eigh
                 (eigenvalues clamped at 0), tr sqrt(.) from eigvalsh of the symmetrised product
  features[name] {pix8, pix16, bands} as flat lists: avg_pool2d to 8x8 / 16x16; and the RMS of each
                 detail level of the Laplacian pyramid (bilinear F.interpolate, align_corners=False)
                 whose coarsest level is 8 px, over a 4x4 grid of cells, finest level first, then
                 channel, then cell row and column
  pr[name]       {precision, recall} of Kynkaanniemi et al. 2019 with torch.cdist and k-th
                 nearest-neighbour radii (self excluded)
"""
import json
import os
import sys

import torch
import torch.nn.functional as F


def read(path, shape):
    with open(path, "rb") as f:
        data = f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape).double()


def frechet(ma, ca, mb, cb):
    w, v = torch.linalg.eigh(ca)
    root = (v * w.clamp(min=0).sqrt()) @ v.T
    m = root @ cb @ root
    mu = torch.linalg.eigvalsh(0.5 * (m + m.T))
    return float(((ma - mb) ** 2).sum() + ca.trace() + cb.trace() - 2 * mu.clamp(min=0).sqrt().sum())


def pix(x, side):
    return F.avg_pool2d(x, kernel_size=(x.shape[2] // side, x.shape[3] // side)).flatten(1)


def bands(x):
    levels = 1
    while min(x.shape[2], x.shape[3]) >> levels >= 8:
        levels += 1
    feats = []
    cur = x
    for _ in range(levels - 1):  # finest detail level first
        down = F.interpolate(cur, scale_factor=0.5, mode="bilinear", align_corners=False)
        detail = cur - F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False)
        n, c, h, w = detail.shape
        cells = detail.reshape(n, c, 4, h // 4, 4, w // 4)
        feats.append((cells ** 2).mean(dim=(3, 5)).sqrt().flatten(1))
        cur = down
    return torch.cat(feats, dim=1)


def features(x, kind):
    return {"pix8": lambda: pix(x, 8), "pix16": lambda: pix(x, 16), "bands": lambda: bands(x)}[kind]()


def precision_recall(real, gen, k):
    def radii(f):
        d = torch.cdist(f, f)
        d.fill_diagonal_(float("inf"))
        return d.kthvalue(k, dim=1).values

    rr, rg = radii(real), radii(gen)
    precision = (torch.cdist(gen, real) <= rr[None, :]).any(dim=1).double().mean()
    recall = (torch.cdist(real, gen) <= rg[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def main(d):
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    out = {"eigen": {}, "frechet": {}, "features": {}, "pr": {}}
    for c in manifest.get("eigen", []):
        m = read(os.path.join(d, c["name"] + ".m.bin"), (c["n"], c["n"]))
        out["eigen"][c["name"]] = torch.linalg.eigvalsh(m).tolist()
    for c in manifest.get("frechet", []):
        n, dim = c["name"], c["d"]
        args = [read(os.path.join(d, f"{n}.{s}.bin"), (dim,) if s[0] == "m" else (dim, dim)) for s in ("ma", "ca", "mb", "cb")]
        out["frechet"][n] = frechet(*args)
    images = {}
    for c in manifest.get("features", []):
        x = read(os.path.join(d, c["name"] + ".x.bin"), tuple(c["shape"]))
        images[c["name"]] = x
        out["features"][c["name"]] = {k: features(x, k).flatten().tolist() for k in ("pix8", "pix16", "bands")}
    for c in manifest.get("pr", []):
        p, r = precision_recall(features(images[c["a"]], c["feature"]), features(images[c["b"]], c["feature"]), c["k"])
        out["pr"][c["name"]] = {"precision": p, "recall": r}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
