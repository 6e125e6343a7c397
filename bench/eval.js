// decoflow eval's metrics against the same computations in PyTorch (same threads, same run):
//   frechet D   Frechet distance of two D x D covariances in float64 (eigh, products, eigvalsh)
//   swd N       SWD x 1000 of N vs N grey 32 px images: Laplacian pyramid (3 levels), 64 random
//               7x7 patches per image and level, per-channel normalisation, 512 projections, sorts
//   pr N        k-NN precision and recall (k = 3) of N vs N images in the 256-d pix16 space
//   node bench/eval.js [N]      (default 1000)
'use strict';
const { time, torchPeer, table, decoflow } = require('./common');

function randomCov(d, k, seed, df) {
  const a = df.Tensor.randn([d, k], { seed });
  const x = a.dataSync();
  const c = new Float32Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += x[i * k + q] * x[j * k + q];
      c[i * d + j] = c[j * d + i] = s / k;
    }
  return df.Tensor.from(c, [d, d]);
}

async function main() {
  const df = decoflow();
  const threads = df.getThreads();
  const n = Number(process.argv[2]) || 1000;
  const rows = [];
  const peer = torchPeer('eval_torch.py', [n], threads) || {};
  for (const d of [256, 768]) {
    const ca = randomCov(d, d + 50, 1, df), cb = randomCov(d, d + 60, 2, df);
    const ma = df.Tensor.randn([d], { seed: 3 }), mb = df.Tensor.randn([d], { seed: 4 });
    const ms = await time(() => df.frechetDistance(ma, ca, mb, cb), { minRuns: 3, minMs: 500 });
    const torchMs = peer[`frechet${d}`];
    rows.push({ metric: `frechet ${d}-d`, threads, 'decoflow ms': ms, 'torch ms': torchMs ?? null, 'torch / decoflow': torchMs ? torchMs / ms : null });
  }
  const a = df.Tensor.randn([n, 1, 32, 32], { seed: 5 }), b = df.Tensor.randn([n, 1, 32, 32], { seed: 6 });
  const swdMs = await time(() => df.evaluate(a, b, { frechet: [], precisionRecall: false }), { warmup: 1, minRuns: 3, minMs: 500 });
  rows.push({ metric: `swd ${n} vs ${n}`, threads, 'decoflow ms': swdMs, 'torch ms': peer.swd ?? null, 'torch / decoflow': peer.swd ? peer.swd / swdMs : null });
  const prMs = await time(() => df.evaluate(a, b, { swd: false, frechet: [], prFeature: 'pix16' }), { warmup: 1, minRuns: 3, minMs: 500 });
  rows.push({ metric: `pr ${n} vs ${n} (pix16)`, threads, 'decoflow ms': prMs, 'torch ms': peer.pr ?? null, 'torch / decoflow': peer.pr ? peer.pr / prMs : null });
  table(rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
