#!/usr/bin/env node
// Leak check: 10,000 tensor create/dispose cycles, 1,000 async matmuls and 100 model / trainer /
// sampler create-train-sample-dispose cycles (counts times --scale). After each part the allocator's
// live tensor and byte counts must be back where they started, and the process's RSS, measured after
// a warm-up of the same work, must not grow by more than --rss-mb (default 48 MB). Prints one line
// per part and exits 1 when a bound is broken.
//   node --expose-gc scripts/leaks.js [--scale 1] [--rss-mb 48]
// DECOFLOW_LIB: the package to test (default dist/index.cjs; the jest test passes the transpiled lib).
'use strict';
const path = require('path');

const df = require(process.env.DECOFLOW_LIB || path.join(__dirname, '..', 'dist', 'index.cjs'));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const scale = arg('scale', 1);
const rssBound = arg('rss-mb', 48) * 2 ** 20;

const gc = () => {
  if (global.gc) for (let i = 0; i < 3; i++) global.gc();
  df.releaseCachedMemory();
};
const live = () => {
  const m = df.memory().cpu;
  return { tensors: m.tensors, bytes: m.bytes };
};
const mb = (b) => (b / 2 ** 20).toFixed(1);

const parts = {
  async tensors(n) {
    for (let i = 0; i < n; i++) {
      const a = df.Tensor.randn([32, 48], { seed: i });
      const b = df.Tensor.from(new Float32Array(100).fill(i), [10, 10]);
      const c = a.reshape([48, 32]);
      for (const t of [c, a, b]) t.dispose();
    }
  },
  async matmuls(n) {
    const a = df.Tensor.randn([64, 96], { seed: 1 });
    const b = df.Tensor.randn([96, 32], { seed: 2 });
    for (let i = 0; i < n; i++) (await df.matmul(a, b)).dispose();
    a.dispose();
    b.dispose();
  },
  async models(n) {
    const config = { stages: 2, channels: 3, height: 16, width: 16, patchSizes: [2, 4], hidden: 32, depth: 1, heads: 2, numClasses: 8 };
    const data = df.shapesDataset({ imageSize: 16, size: 64 });
    for (let i = 0; i < n; i++) {
      const model = df.Model.create(config, { maxBatch: 4, seed: i });
      const trainer = new df.Trainer(model, { stageProbs: [0.5, 0.5], seed: i });
      const batch = await data.batch([0, 1, 2, 3]);
      await trainer.step(batch);
      batch.images.dispose();
      batch.labels.dispose();
      const sampler = new df.Sampler(model);
      const r = await sampler.sample({ n: 2, labels: [0, 1], seed: i, stepsPerStage: [2, 2], previews: true });
      for (const t of [r.images, ...r.levels, ...r.previews, ...r.intermediates]) t.dispose();
      trainer.dispose();
      model.dispose();
    }
    data.dispose();
  },
};

async function main() {
  const counts = { tensors: 10000, matmuls: 1000, models: 100 };
  let failed = false;
  for (const [name, run] of Object.entries(parts)) {
    const n = Math.max(1, Math.round(counts[name] * scale));
    await run(Math.max(1, Math.round(n / 10))); // warm-up: pools, caches and JIT reach their size
    gc();
    const before = live();
    const rss0 = process.memoryUsage().rss;
    const t0 = Date.now();
    await run(n);
    gc();
    const after = live();
    const grew = process.memoryUsage().rss - rss0;
    const ok = after.tensors === before.tensors && after.bytes === before.bytes && grew < rssBound;
    failed = failed || !ok;
    console.log(
      `leaks: ${name}: ${n} cycles in ${((Date.now() - t0) / 1000).toFixed(1)} s; live tensors ${before.tensors} -> ${after.tensors}, ` +
        `live bytes ${before.bytes} -> ${after.bytes}; RSS ${grew >= 0 ? '+' : ''}${mb(grew)} MB (bound ${mb(rssBound)} MB) ${ok ? 'ok' : 'LEAK'}`,
    );
  }
  const end = live();
  console.log(`leaks: at the end ${end.tensors} live tensors, ${end.bytes} live bytes${global.gc ? '' : ' (run with --expose-gc for exact RSS)'}`);
  if (end.tensors !== 0 || end.bytes !== 0) failed = true;
  process.exitCode = failed ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
