// One DFM-DiT training step (forward, hand-written backward, clipping, AdamW, EMA) against the
// same model in PyTorch 2.x (bench/model_torch.py) in the same run and thread count. GFLOP/s counts
// the model's matmul and attention FLOPs (training = 3 x forward) and is shown against OpenBLAS
// sgemm measured here at comparable sizes: the ceiling for a GEMM-bound step.
'use strict';
const { time, torchPeer, table, decoflow } = require('./common');

const df = decoflow();
const threads = Number(process.env.DECOFLOW_THREADS || df.getThreads());
df.setThreads(threads);

const ROWS = [
  {
    name: 'w256 d6 h4 T64 B32',
    batch: 32,
    config: { stages: 1, channels: 4, height: 16, width: 16, patchSizes: [2], hidden: 256, depth: 6, heads: 4, mlpRatio: 4, numClasses: 10 },
  },
  {
    name: 'w384 d12 h6 T256 B8',
    batch: 8,
    config: { stages: 1, channels: 4, height: 32, width: 32, patchSizes: [2], hidden: 384, depth: 12, heads: 6, mlpRatio: 4, numClasses: 10 },
  },
];

// Matmul + attention FLOPs of one forward pass (the rest is O(tokens * width)).
function forwardFlops({ config: c, batch: B }) {
  const D = c.hidden, M = D * (c.mlpRatio ?? 4), N = (c.height / c.patchSizes[0]) * (c.width / c.patchSizes[0]);
  const F = c.freqDim ?? 256, S = c.stages, R = B * N;
  let f = 0;
  for (let s = 0; s < S; s++) {
    const td = c.channels * c.patchSizes[s] ** 2;
    f += 2 * R * td * D * 2; // patch embedding and final linear
    f += 2 * B * (F * D + D * D) + 2 * B * D * 2 * D + 2 * R * D; // timestep MLP, final adaLN
  }
  f += c.depth * (2 * R * D * (3 * D + D + 2 * M) + 4 * B * N * N * D + 2 * B * D * 6 * D);
  return f;
}

function batchFor(row) {
  const { config: c, batch: B } = row;
  const S = c.stages;
  const x = [], targets = [];
  for (let s = 0; s < S; s++) {
    const h = c.height >> (S - 1 - s), w = c.width >> (S - 1 - s);
    x.push(df.Tensor.randn([B, c.channels, h, w], { seed: 1 + s }));
    targets.push(df.Tensor.randn([B, c.channels, h, w], { seed: 100 + s }));
  }
  const t = df.Tensor.from(Float32Array.from({ length: B * S }, (_, i) => ((i * 0.37) % 1)), [B, S]);
  const labels = df.Tensor.from(Int32Array.from({ length: B }, (_, i) => i % 11), [B], { dtype: 'i32' });
  return { x, targets, t, labels };
}

async function sgemmGflops(m, n, k) {
  const a = df.Tensor.randn([m, k], { seed: 1 }), b = df.Tensor.randn([k, n], { seed: 2 });
  const ms = await time(() => df.matmulSync(a, b).dispose(), { minMs: 500 });
  return (2 * m * n * k) / ms / 1e6;
}

async function main() {
  console.log(`model training step, ${threads} threads, BLAS: ${df.info().blas ?? ''}`);
  const ceilings = {
    'sgemm 2048x1536x384': await sgemmGflops(2048, 1536, 384),
    'sgemm 1024^3': await sgemmGflops(1024, 1024, 1024),
  };
  const ceiling = Math.max(...Object.values(ceilings));
  for (const [k, v] of Object.entries(ceilings)) console.log(`${k}: ${v.toFixed(1)} GFLOP/s`);

  // The machine is shared and noisy: each row alternates PyTorch and decoflow REPS times and keeps
  // each side's best median, so both see the same conditions.
  const REPS = Number(process.env.DECOFLOW_BENCH_REPS || 2);
  const rows = [];
  let peerInfo = null;
  for (const row of ROWS) {
    let ms = Infinity, torchMs = Infinity;
    for (let rep = 0; rep < REPS; rep++) {
      const peer = torchPeer('model_torch.py', [JSON.stringify([row])], threads);
      if (peer) {
        peerInfo = peer;
        torchMs = Math.min(torchMs, peer.rows[0].ms);
      }
      const m = df.Model.create(row.config, { maxBatch: row.batch, seed: 0 });
      const batch = batchFor(row);
      ms = Math.min(ms, await time(() => m.trainStepSync(batch), { warmup: 2, minRuns: 5, minMs: 2000, maxRuns: 20 }));
      m.dispose();
    }
    const flops = 3 * forwardFlops(row);
    if (!Number.isFinite(torchMs)) torchMs = undefined;
    rows.push({
      row: row.name,
      'decoflow ms': ms,
      'torch ms': torchMs,
      'speed-up': torchMs ? torchMs / ms : undefined,
      'GFLOP/s': flops / ms / 1e6,
      'torch GFLOP/s': torchMs ? flops / torchMs / 1e6 : undefined,
      '% of sgemm': (100 * flops) / ms / 1e6 / ceiling,
    });
  }
  table(rows);
  if (peerInfo) console.log(`peer: PyTorch ${peerInfo.torch}, ${peerInfo.threads} threads`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
