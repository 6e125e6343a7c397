// Pyramid decompose + recompose (f32): milliseconds, GB/s of the bytes the two passes must read and
// write (decompose reads x and writes the stages, recompose reads the stages and writes x; the
// intermediate images of 3+ stages are not counted), against PyTorch's F.interpolate pyramid and
// against a plain multithreaded memcpy with the same traffic (benchCopy of half the bytes: it reads
// them and writes them), all in the same run and threads.
//   'new' rows allocate the outputs on every call (as PyTorch does); 'out' rows write into tensors
//   given once with options.out (as the trainer and sampler do), so they time the kernels alone.
// Targets (rows 1 and 2, Laplacian): >= 5x PyTorch and >= 50% of the copy's bandwidth.
// Usage: node bench/pyramid.js [--threads N] [laplacian|haar ...]
'use strict';
const { time, torchPeer, table, decoflow } = require('./common');

const rows = [
  { shape: [64, 3, 64, 64], stages: 2 },
  { shape: [16, 4, 128, 128], stages: 3 },
  { shape: [8, 3, 512, 512], stages: 4 },
];

async function main() {
  const d = decoflow();
  const args = process.argv.slice(2);
  const t = args.indexOf('--threads');
  if (t >= 0) d.setThreads(Number(args.splice(t, 2)[1]));
  const kinds = args.length ? args : ['laplacian', 'haar'];
  const threads = d.getThreads();
  const out = [];
  for (const { shape, stages } of rows) {
    const [b, c, h, w] = shape;
    const n = b * c * h * w;
    let levelFloats = 0;
    for (let s = 0; s < stages; s++) levelFloats += n / 4 ** (stages - 1 - s);
    const bytes = 2 * 4 * (n + levelFloats);
    const x = d.Tensor.randn(shape, { seed: 1 });
    const peer = kinds.includes('laplacian') ? torchPeer('pyramid_torch.py', [b, c, h, w, stages], threads) : null;
    const copyMs = d.benchCopy(bytes / 2, 50);
    for (const kind of kinds) {
      const given = d.pyramid.decomposeSync(x, { stages, kind });
      const image = d.Tensor.zeros(shape);
      const variants = {
        new: () => {
          const levels = d.pyramid.decomposeSync(x, { stages, kind });
          d.pyramid.recomposeSync(levels, { kind }).dispose();
          for (const l of levels) l.dispose();
        },
        out: () => {
          d.pyramid.decomposeSync(x, { stages, kind, out: given });
          d.pyramid.recomposeSync(given, { kind, out: image });
        },
      };
      for (const [alloc, fn] of Object.entries(variants)) {
        const ms = await time(fn, { minMs: 1000 });
        const torchMs = kind === 'laplacian' && peer ? peer.ms : null;
        out.push({
          shape: `[${shape.join(',')}]`,
          stages,
          kind,
          alloc,
          threads,
          ms,
          'GB/s': bytes / ms / 1e6,
          'torch ms': torchMs,
          'torch GB/s': torchMs ? bytes / torchMs / 1e6 : null,
          'x torch': torchMs ? torchMs / ms : null,
          'copy GB/s': bytes / copyMs / 1e6,
          'of copy': copyMs / ms,
        });
      }
      for (const t of [...given, image]) t.dispose();
    }
    x.dispose();
  }
  table(out);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
