// The DFM pipeline at the demo's configuration: training steps per second (the whole native step:
// decomposition, draws, forward, backward, AdamW, EMA), images per second for sampling with 40
// model evaluations, and the sampler's time beyond its model forward passes (target < 5%):
// sample time against 40 forward passes of the same batch measured in the same run.
'use strict';
const { time, table, decoflow } = require('./common');

const DEMO = { size: 'tiny', stages: 2, batch: 32 };

async function main() {
  const d = decoflow();
  const rows = [];
  for (const stages of [1, 2]) {
    const config = d.modelConfig({ size: DEMO.size, stages, channels: 3, imageSize: 32, numClasses: 8 });
    const model = d.Model.create(config, { maxBatch: DEMO.batch, seed: 0 });
    const trainer = new d.Trainer(model, { stageProbs: stages === 2 ? [0.5, 0.5] : [1] });
    const loader = new d.BatchLoader(d.shapesDataset(), DEMO.batch, 0);
    const batch = await loader.next();
    const stepMs = await time(() => trainer.step(batch), { warmup: 2, minRuns: 5, minMs: 3000 });

    // sampling: n images, 40 evaluations (FM [40], DFM [30, 10]), Euler, no guidance
    const n = 32;
    const steps = stages === 2 ? [30, 10] : [40];
    const sampler = new d.Sampler(model);
    const labels = Array.from({ length: n }, (_, i) => i % 8);
    const sampleMs = await time(async () => {
      const r = await sampler.sample({ n, labels, stepsPerStage: steps, ema: false });
      for (const t of [r.images, ...r.levels]) t.dispose();
    }, { warmup: 1, minRuns: 3, minMs: 3000 });
    // the same 40 forward passes alone, on a model made for n samples
    const fwdModel = d.Model.create(config, { maxBatch: n, seed: 0 });
    const x = Array.from({ length: stages }, (_, s) => d.Tensor.randn([n, 3, 32 >> (stages - 1 - s), 32 >> (stages - 1 - s)], { seed: s }));
    const t = d.Tensor.from(new Float32Array(n * stages).fill(0.5), [n, stages]);
    const lab = d.Tensor.from(Int32Array.from(labels), [n], { dtype: 'i32' });
    const fwdMs = await time(() => fwdModel.forwardSync({ x, t, labels: lab }).forEach((o) => o.dispose()), { warmup: 2, minRuns: 10, minMs: 2000 });
    rows.push({
      method: stages === 2 ? 'DFM (2 stages)' : 'FM (1 stage)',
      'train steps/s (B32)': 1000 / stepMs,
      'train ms/step': stepMs,
      'sample img/s (40 NFE)': (1000 * n) / sampleMs,
      'sample ms (n=32)': sampleMs,
      '40 x forward ms': 40 * fwdMs,
      'sampler overhead %': (100 * (sampleMs - 40 * fwdMs)) / sampleMs,
    });
    for (const z of [...x, t, lab, batch.images, batch.labels]) z.dispose();
    trainer.dispose();
    model.dispose();
    fwdModel.dispose();
  }
  console.log(`threads ${d.getThreads()}, model '${DEMO.size}' (${DEMO.stages} stages at 32 px, 8x8 tokens)`);
  table(rows);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
