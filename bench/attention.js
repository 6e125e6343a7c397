// Flash attention, forward and forward+backward, against PyTorch 2.x scaled_dot_product_attention
// on the CPU in the same run with the same threads (bench/attention_torch.py).
// GFLOP/s by FlashAttention's count: forward 4 * B * H * N * N * D, backward 2.5x the forward
// (so forward+backward = 3.5x), halved with --causal.
//   node bench/attention.js [--causal] [--threads N]
'use strict';
const { time, torchPeer, table, decoflow } = require('./common');

const SHAPES = [
  [8, 4, 256, 64],
  [2, 4, 1024, 64],
  [1, 8, 4096, 64],
];

async function main() {
  const df = decoflow();
  const args = process.argv.slice(2);
  const causal = args.includes('--causal');
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? Number(args[ti + 1]) : df.info().hardwareThreads;
  df.setThreads(threads);
  console.log(`attention (f32, CPU, ${threads} threads${causal ? ', causal' : ''}); ${df.info().blas}`);

  const peer = torchPeer('attention_torch.py', [...SHAPES.map((s) => s.join(',')), ...(causal ? ['--causal'] : [])], threads);
  const rows = [];
  for (let i = 0; i < SHAPES.length; i++) {
    const [b, h, n, d] = SHAPES[i];
    const shape = [b, h, n, d];
    const q = df.Tensor.randn(shape, { seed: 1 });
    const k = df.Tensor.randn(shape, { seed: 2 });
    const v = df.Tensor.randn(shape, { seed: 3 });
    const dO = df.Tensor.randn(shape, { seed: 4 });
    const opts = { causal };
    const forward = () => {
      const r = df.attentionSync(q, k, v, opts);
      r.o.dispose();
      r.lse.dispose();
    };
    const forwardBackward = () => {
      const r = df.attentionSync(q, k, v, opts);
      const g = df.attentionBackwardSync(q, k, v, r.o, r.lse, dO, opts);
      for (const t of [r.o, r.lse, g.dq, g.dk, g.dv]) t.dispose();
    };
    const big = n >= 4096;
    const timing = big ? { warmup: 1, minRuns: 3, minMs: 0 } : {};
    const fwdMs = await time(forward, timing);
    const fbMs = await time(forwardBackward, timing);
    const flop = (4 * b * h * n * n * d) / (causal ? 2 : 1);
    const gf = (f, ms) => f / ms / 1e6;
    const p = peer && peer.rows[i];
    const label = `B${b} H${h} N${n} D${d}`;
    rows.push({
      shape: label,
      pass: 'forward',
      'decoflow ms': fwdMs,
      'decoflow GFLOP/s': gf(flop, fwdMs),
      'torch ms': p ? p.forward_ms : undefined,
      'torch GFLOP/s': p ? gf(flop, p.forward_ms) : undefined,
      'speed-up': p ? p.forward_ms / fwdMs : undefined,
    });
    rows.push({
      shape: label,
      pass: 'fwd+bwd',
      'decoflow ms': fbMs,
      'decoflow GFLOP/s': gf(3.5 * flop, fbMs),
      'torch ms': p ? p.forward_backward_ms : undefined,
      'torch GFLOP/s': p ? gf(3.5 * flop, p.forward_backward_ms) : undefined,
      'speed-up': p ? p.forward_backward_ms / fbMs : undefined,
    });
    for (const t of [q, k, v, dO]) t.dispose();
  }
  table(rows);
  if (peer) console.log(`peer: PyTorch ${peer.torch}, ${peer.threads} threads`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
