// A child of test/cpu-levels.test.ts: runs the ops, a few training steps and a sample at the CPU level
// that DECOFLOW_CPU_LEVEL names (or the default one), and prints the results as one JSON line.
//   DECOFLOW_CPU_LEVEL=avx2 node test/levels/run_level.js path/to/dist/index.cjs
'use strict';
const d = require(process.argv[2]);

const arr = (t) => Array.from(t.dataSync());
const randn = (shape, seed) => d.Tensor.randn(shape, { seed });

async function main() {
  const out = { level: d.info().cpuLevel, detail: d.info().cpuLevelDetail };
  // attention, forward and backward, with a ragged head dim and causal masking
  const q = randn([2, 3, 70, 40], 1), k = randn([2, 3, 70, 40], 2), v = randn([2, 3, 70, 40], 3);
  const a = d.attentionSync(q, k, v, { causal: true });
  const g = d.attentionBackwardSync(q, k, v, a.o, a.lse, randn([2, 3, 70, 40], 4), { causal: true });
  out.attention = { o: arr(a.o), lse: arr(a.lse), dq: arr(g.dq), dk: arr(g.dk), dv: arr(g.dv) };
  // the pyramids
  const x = randn([2, 3, 32, 48], 5);
  out.pyramid = {};
  for (const kind of ['laplacian', 'haar', 'consistent']) {
    const levels = d.pyramid.decomposeSync(x, { stages: 3, kind });
    out.pyramid[kind] = { levels: levels.map(arr), back: arr(d.pyramid.recomposeSync(levels, { kind })) };
  }
  // the built-in GEMM (the level's micro-kernel) and the default one
  const m1 = randn([37, 300], 6), m2 = randn([300, 45], 7);
  d.setGemm('builtin');
  out.gemmBuiltin = arr(d.matmulSync(m1, m2));
  d.setGemm('auto');
  out.gemm = arr(d.matmulSync(m1, m2));
  // training steps and a sample of a small class-conditional 2-stage model
  const config = { stages: 2, channels: 3, height: 16, width: 16, patchSizes: [2, 4], hidden: 48, depth: 2, heads: 3, numClasses: 4, freqDim: 32 };
  const model = d.Model.create(config, { maxBatch: 4, seed: 3, optimizer: { lr: 3e-3, warmupSteps: 2 } });
  const trainer = new d.Trainer(model, { stageProbs: [0.5, 0.5], seed: 9 });
  out.losses = [];
  for (let step = 0; step < 4; step++) {
    const images = randn([4, 3, 16, 16], 100 + step);
    const labels = d.Tensor.from(Int32Array.from([0, 1, 2, step % 4]), [4], { dtype: 'i32' });
    out.losses.push((await trainer.step(images, labels)).loss);
  }
  out.param = arr(model.getParameter(model.parameters()[0].name));
  const s = await new d.Sampler(model).sample({ n: 2, seed: 7, stepsPerStage: [3, 2], ema: false });
  out.sample = arr(s.images);
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.log(JSON.stringify({ level: d.info().cpuLevel, error: { code: e.code, message: e.message } }));
});
