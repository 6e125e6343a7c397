"""The peer of bench/gemm.js: torch.matmul at n x n x n, f32."""
import sys

import torch

from torch_common import emit, median_ms, setup

threads = setup()
n = int(sys.argv[1])
a = torch.randn(n, n)
b = torch.randn(n, n)
emit({"ms": median_ms(lambda: torch.matmul(a, b), min_ms=1000), "threads": threads})
