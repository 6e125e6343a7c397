// The DiT, trainer and sampler on a CUDA device through the public API, against the CPU: the same
// checks run under jest on a GPU machine (test/cuda.test.ts, skipped without one) and without jest
// on the device machine (scripts/device-node-check.js). Tolerances:
//   f32 mode (TF32 off): every loss <= 1e-4 relative, every parameter's gradient <= 1e-3
//     (max |gpu - cpu| / max |cpu|), sampled images <= 1e-3;
//   bf16 mode: 200 training steps whose 20-step mean losses stay within 5% of the CPU's, sampled
//     images within 5e-2;
//   checkpoints: what one device saves, the other loads bit for bit (f32 on disk).
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const CONFIGS = [
  { stages: 1, channels: 3, height: 16, width: 16, patchSizes: [2], hidden: 64, depth: 2, heads: 2, numClasses: 4 },
  { stages: 2, channels: 3, height: 16, width: 16, patchSizes: [1, 2], hidden: 64, depth: 2, heads: 2, numClasses: 4, stageEmbedding: true },
  { stages: 3, channels: 1, height: 16, width: 16, patchSizes: [1, 2, 4], hidden: 64, depth: 2, heads: 1, numClasses: 0 },
];

function relErr(got, ref) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num = Math.max(num, Math.abs(got[i] - ref[i]));
    den = Math.max(den, Math.abs(ref[i]));
  }
  return den > 0 ? num / den : num;
}

function batchOf(df, c, b, seed) {
  const x = df.Tensor.randn([b, c.channels, c.height, c.width], { seed }).dataSync();
  for (let i = 0; i < x.length; i++) x[i] = Math.tanh(0.5 * x[i] + Math.sin(i * 0.05));
  const images = df.Tensor.from(x, [b, c.channels, c.height, c.width]);
  const labels = c.numClasses ? df.Tensor.from(Int32Array.from({ length: b }, (_, i) => (i + seed) % c.numClasses), [b], { dtype: 'i32' }) : undefined;
  return { images, labels };
}

// One model per device from the same seed, trained on the same batches.
function pair(df, c, precision, batch) {
  const opts = { maxBatch: batch, seed: 5, optimizer: { lr: 1e-3, warmupSteps: 10, emaDecay: 0.99 } };
  const cpu = df.Model.create(c, opts);
  const gpu = df.Model.create(c, { ...opts, device: 'cuda', precision });
  const trainer = { stageProbs: c.stages > 1 ? Array(c.stages).fill(1 / c.stages) : [1], seed: 3 };
  return { cpu, gpu, tc: new df.Trainer(cpu, trainer), tg: new df.Trainer(gpu, trainer) };
}

async function stepBoth(df, p, c, batch, seed) {
  const b = batchOf(df, c, batch, seed);
  const onGpu = b.images.to(p.gpu.device);
  const a = await p.tc.step(b.images, b.labels);
  const g = await p.tg.step(onGpu, b.labels);
  for (const t of [b.images, b.labels, onGpu]) if (t) t.dispose();
  return [a, g];
}

async function f32Steps(df, log = () => {}) {
  for (const c of CONFIGS) {
    const p = pair(df, c, 'f32', 4);
    assert.equal(p.gpu.precision, 'f32');
    for (let step = 0; step < 3; step++) {
      const [a, g] = await stepBoth(df, p, c, 4, 100 + step);
      assert.equal(g.activeStage, a.activeStage);
      const e = Math.abs(g.loss - a.loss) / a.loss;
      assert.ok(e <= 1e-4, `S=${c.stages} step ${step}: loss ${g.loss} vs cpu ${a.loss} (rel ${e})`);
      if (step === 2)
        for (const { name } of p.cpu.parameters()) {
          const eg = relErr(p.gpu.getParameter(name, 'grad').dataSync(), p.cpu.getParameter(name, 'grad').dataSync());
          assert.ok(eg <= 1e-3, `S=${c.stages}: gradient of ${name}: rel err ${eg}`);
        }
    }
    log(`f32: S=${c.stages}: 3 steps, losses <= 1e-4 and every gradient <= 1e-3 of the cpu's`);
    for (const m of [p.tc, p.tg, p.cpu, p.gpu]) m.dispose();
  }
}

async function bf16Curve(df, log = () => {}) {
  const c = CONFIGS[1];
  const p = pair(df, c, 'bf16', 8);
  assert.equal(p.gpu.precision, 'bf16');
  const la = [], lg = [];
  for (let step = 0; step < 200; step++) {
    const [a, g] = await stepBoth(df, p, c, 8, step);
    la.push(a.loss);
    lg.push(g.loss);
  }
  let worst = 0;
  for (let w = 0; w < 200; w += 20) {
    const ma = la.slice(w, w + 20).reduce((s, x) => s + x, 0) / 20, mg = lg.slice(w, w + 20).reduce((s, x) => s + x, 0) / 20;
    worst = Math.max(worst, Math.abs(mg - ma) / ma);
  }
  assert.ok(worst <= 0.05, `bf16: 20-step mean losses differ from the cpu's by up to ${worst}`);
  assert.ok(lg.slice(180).reduce((s, x) => s + x, 0) < lg.slice(0, 20).reduce((s, x) => s + x, 0), 'bf16: the loss did not fall');
  log(`bf16: 200 steps, 20-step mean losses within ${(100 * worst).toFixed(2)}% of the cpu's`);
  for (const m of [p.tc, p.tg, p.cpu, p.gpu]) m.dispose();
}

async function checkpointsAndSampling(df, log = () => {}) {
  const c = CONFIGS[1];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-cuda-'));
  try {
    for (const precision of ['f32', 'bf16']) {
      const p = pair(df, c, precision, 4);
      for (let step = 0; step < 5; step++) await stepBoth(df, p, c, 4, step);
      // what the GPU saved, the CPU loads bit for bit, and back
      const file = path.join(dir, `gpu-${precision}.safetensors`);
      p.gpu.save(file);
      const onCpu = df.Model.load(file);
      const back = df.Model.load(file, { device: 'cuda', precision });
      for (const { name } of p.gpu.parameters()) {
        const w = p.gpu.getParameter(name).dataSync();
        assert.deepEqual(onCpu.getParameter(name).dataSync(), w, `${name}: the cpu loaded other bits`);
        assert.deepEqual(back.getParameter(name).dataSync(), w, `${name}: the gpu reloaded other bits`);
      }
      // one checkpoint, one seed: the same images on both devices
      const opts = { n: 4, labels: [0, 1, 2, 4], seed: 9, stepsPerStage: [6, 4], cfg: 2, solver: 'heun' };
      const a = await new df.Sampler(onCpu).sample(opts);
      const g = await new df.Sampler(back).sample(opts);
      assert.equal(g.images.device, back.device);
      const e = relErr(await g.images.data(), await a.images.data());
      const tol = precision === 'f32' ? 1e-3 : 5e-2;
      assert.ok(e <= tol, `${precision}: sampled images differ by ${e} (tolerance ${tol})`);
      // stochastic steps: the same Philox noise on both devices, so the same images too
      const noisyOpts = { n: 4, labels: [0, 1, 2, 4], seed: 9, stepsPerStage: [6, 4], stageEta: [0.3, 0.7] };
      const an = await new df.Sampler(onCpu).sample(noisyOpts);
      const gn = await new df.Sampler(back).sample(noisyOpts);
      const en = relErr(await gn.images.data(), await an.images.data());
      assert.ok(en <= tol, `${precision}: images sampled with stageEta differ by ${en} (tolerance ${tol})`);
      log(`${precision}: checkpoints move between devices bit for bit; sampled images within ${e.toExponential(1)}, with stageEta ${en.toExponential(1)}`);
      for (const m of [p.tc, p.tg, p.cpu, p.gpu, onCpu, back]) m.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function memoryAndLoader(df, log = () => {}) {
  const c = CONFIGS[0];
  const m = df.Model.create(c, { device: 'cuda', maxBatch: 4 });
  const mem = df.memory()['cuda:0'];
  assert.ok(mem && mem.bytes > 0 && mem.peakBytes >= mem.bytes, 'memory() reports the model on cuda:0');
  m.dispose();
  let code;
  try {
    df.Model.create({ ...c, hidden: 4096, depth: 64, heads: 32 }, { device: 'cuda', maxBatch: 1 << 16 });
  } catch (e) {
    code = e.code;
  }
  assert.equal(code, 'ERR_DECOFLOW_OUT_OF_MEMORY', 'an absurd model on the GPU is a coded out-of-memory error');
  const loader = new df.BatchLoader(df.shapesDataset({ imageSize: 16 }), 4, 0, { device: 'cuda' });
  const b = await loader.next();
  assert.equal(b.images.device, 'cuda:0');
  assert.equal(b.labels.device, 'cpu');
  log('memory() counts device bytes; out of memory is coded; BatchLoader prefetches onto the device');
}

module.exports = { f32Steps, bf16Curve, checkpointsAndSampling, memoryAndLoader };
