"""The peer of bench/pyramid.js: a Laplacian pyramid decompose + recompose with F.interpolate
(bilinear, align_corners=False), as the DFM authors compute it. Args: B C H W stages."""
import sys

import torch
import torch.nn.functional as F

from torch_common import emit, median_ms, setup


def decompose(x, stages):
    downs = [x]
    for _ in range(stages - 1):
        downs.append(F.interpolate(downs[-1], scale_factor=0.5, mode="bilinear", align_corners=False))
    levels = [downs[-1]]
    for s in range(stages - 2, -1, -1):
        levels.append(downs[s] - F.interpolate(downs[s + 1], scale_factor=2, mode="bilinear", align_corners=False))
    return levels


def recompose(levels):
    img = levels[0]
    for level in levels[1:]:
        img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + level
    return img


threads = setup()
b, c, h, w, stages = map(int, sys.argv[1:6])
x = torch.randn(b, c, h, w)
emit({"ms": median_ms(lambda: recompose(decompose(x, stages)), min_ms=1000), "threads": threads})
