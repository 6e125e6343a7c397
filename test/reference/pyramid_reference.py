"""PyTorch reference for test/pyramid.test.ts (run by the test with /usr/bin/python3, torch >= 1.13).

Usage: pyramid_reference.py DIR. DIR/manifest.json lists cases {name, shape [B, C, H, W], stages};
DIR/<name>.x.bin holds each input (f32, little-endian, row-major). Writes, per case:
  <name>.laplacian.<s>.bin  stage s (0 = coarsest) of the Laplacian pyramid, from F.interpolate
                            (bilinear, align_corners=False, no antialias), as in docs/METHOD.md
  <name>.haar.<s>.bin       stage s of the orthonormal Haar pyramid: conv2d with the four 2x2 Haar
                            filters at stride 2; a finer stage is conv_transpose2d of the three
                            detail bands alone (the bands mapped back onto the stage's grid)
  <name>.consistent.<s>.bin the consistent pyramid: the same 2x2 means, with the mean-preserving
                            up-sampler U (D U)^-1, D U built here as a dense matrix by passing every
                            coarse basis image through F.interpolate up and down; a finer stage is
                            down^k(x) - U (D U)^-1 down^(k+1)(x), so its 2x2 means are zero
  <name>.<kind>.preview<k>.bin  the first k stages recomposed, then upsampled to full size
"""
import json
import os
import sys

import torch
import torch.nn.functional as F


def down_bilinear(x):
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


def up_bilinear(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def laplacian(x, stages):
    downs = [x]
    for _ in range(stages - 1):
        downs.append(down_bilinear(downs[-1]))
    levels = [downs[-1]]
    for s in range(stages - 2, -1, -1):
        levels.append(downs[s] - up_bilinear(downs[s + 1]))
    return levels


# Orthonormal 2x2 Haar filters: low (LL) and the horizontal, vertical and diagonal details.
HAAR = 0.5 * torch.tensor(
    [[[1, 1], [1, 1]], [[1, -1], [1, -1]], [[1, 1], [-1, -1]], [[1, -1], [-1, 1]]], dtype=torch.float64
).unsqueeze(1)


def haar_up(low):
    """Synthesis from the low band alone."""
    return F.conv_transpose2d(low, HAAR[:1], stride=2)


def haar(x, stages):
    b, c, h, w = x.shape
    cur = x.double().reshape(b * c, 1, h, w)
    details = []
    for _ in range(stages - 1):
        bands = F.conv2d(cur, HAAR, stride=2)
        details.append(F.conv_transpose2d(bands[:, 1:], HAAR[1:], stride=2))
        cur = bands[:, :1]
    levels = [cur] + details[::-1]
    return [l.reshape(b, c, l.shape[-2], l.shape[-1]).float() for l in levels]


def mean_preserving_up(x):
    """U (D U)^-1 x in float64, with D U as a dense (h w) x (h w) matrix measured from F.interpolate."""
    b, c, h, w = x.shape
    basis = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    du = down_bilinear(up_bilinear(basis)).reshape(h * w, h * w).T  # column j: D U of basis image j
    y = torch.linalg.solve(du, x.double().reshape(b * c, h * w).T).T
    return up_bilinear(y.reshape(b, c, h, w))


def consistent(x, stages):
    downs = [x.double()]
    for _ in range(stages - 1):
        downs.append(down_bilinear(downs[-1]))
    levels = [downs[-1]]
    for s in range(stages - 2, -1, -1):
        levels.append(downs[s] - mean_preserving_up(downs[s + 1]))
    return [l.float() for l in levels]


def preview(levels, k, up):
    img = levels[0]
    for s in range(1, len(levels)):
        img = up(img) + levels[s] if s < k else up(img)
    return img


def haar_up_image(img):
    b, c, h, w = img.shape
    return haar_up(img.double().reshape(b * c, 1, h, w)).reshape(b, c, 2 * h, 2 * w).float()


def save(path, t):
    t.contiguous().numpy().astype("<f4").tofile(path)


def main():
    out = sys.argv[1]
    torch.set_grad_enabled(False)
    with open(os.path.join(out, "manifest.json")) as f:
        cases = json.load(f)["cases"]
    for case in cases:
        shape, stages, name = case["shape"], case["stages"], case["name"]
        n = shape[0] * shape[1] * shape[2] * shape[3]
        with open(os.path.join(out, name + ".x.bin"), "rb") as f:
            x = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        assert x.numel() == n, (name, x.numel(), n)
        x = x.reshape(shape)
        kinds = (
            ("laplacian", laplacian(x, stages), up_bilinear),
            ("haar", haar(x, stages), haar_up_image),
            ("consistent", consistent(x, stages), lambda l: mean_preserving_up(l).float()),
        )
        for kind, levels, up in kinds:
            for s, level in enumerate(levels):
                save(os.path.join(out, f"{name}.{kind}.{s}.bin"), level)
            for k in range(1, stages + 1):
                save(os.path.join(out, f"{name}.{kind}.preview{k}.bin"), preview(levels, k, up))
    print(json.dumps({"cases": len(cases), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
