"""Shared by the PyTorch peer scripts: thread setup and timing (median, after warm-up)."""
import json
import os
import time

import torch


def setup():
    threads = int(os.environ.get("DECOFLOW_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    return threads


def median_ms(fn, warmup=2, min_runs=5, min_ms=300, max_runs=200):
    for _ in range(warmup):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < max_runs:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= min_runs and (time.perf_counter() - start) * 1e3 > min_ms:
            break
    samples.sort()
    return samples[len(samples) // 2]


def emit(obj):
    obj["torch"] = torch.__version__
    print(json.dumps(obj))
