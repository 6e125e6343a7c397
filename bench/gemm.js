// matmul GFLOP/s at m = n = k (default 1024), f32: decoflow with OpenBLAS and with its built-in
// kernel, against torch.matmul in the same run and threads.
'use strict';
const { time, torchPeer, table, decoflow } = require('./common');

async function main() {
  const d = decoflow();
  const threads = d.getThreads();
  const sizes = process.argv.slice(2).map(Number).filter(Boolean);
  const rows = [];
  for (const n of sizes.length ? sizes : [1024]) {
    const flop = 2 * n * n * n;
    const a = d.Tensor.randn([n, n], { seed: 1 });
    const b = d.Tensor.randn([n, n], { seed: 2 });
    const row = { size: `${n}^3`, threads };
    for (const impl of ['blas', 'builtin']) {
      if (impl === 'blas' && !d.info().blasAvailable && d.info().blas.startsWith('none')) continue;
      d.setGemm(impl);
      const ms = await time(() => d.matmulSync(a, b).dispose(), { minMs: 1000 });
      row[`${impl} GFLOP/s`] = flop / ms / 1e6;
    }
    d.setGemm('auto');
    const peer = torchPeer('gemm_torch.py', [n], threads);
    row['torch GFLOP/s'] = peer ? flop / peer.ms / 1e6 : null;
    row['blas / torch'] = peer ? row['blas GFLOP/s'] / row['torch GFLOP/s'] : null;
    row['builtin / blas'] = row['builtin GFLOP/s'] / row['blas GFLOP/s'];
    rows.push(row);
    a.dispose();
    b.dispose();
  }
  table(rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
