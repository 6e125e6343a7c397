// Where DFM loses fine detail: samples a 2-stage checkpoint and scores the final images as the
// sampler recomposes them (up(coarse) + fine) and made consistent with the coarse stage, i.e.
//   x' = x + alpha * U y,  y = (D U)^-1 (c - D x)
// (D: the pyramid's 2x downsampling, U: its upsampling, c: the coarse stage's output), so that with
// alpha = 1 the image's 16 px reduction is exactly the coarse stage's output, as it is for real images.
// D U is tridiag(1/8, 3/4, 1/8) along each axis (eigenvalues 1/2..1), so y comes from a few
// Richardson steps y += e - D U y. Also scores the coarse stage's own output against the real
// images' 16 px reductions. Every score is decoflow eval's, with its per-level split of FD bands.
//   node bench/recompose_study.js --checkpoint DIR/checkpoint.safetensors [--dataset fashion-mnist]
//     [--variant 35,5~0.95s0.75] [--alphas 0.5,1] [--split validation|test] [--samples 1000]
const { Model, Sampler, loadImageSet, pyramid, evaluate, Tensor, setThreads } = require('../dist/index.cjs');

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const values = (t) => Float32Array.from(t.dataSync());
function down(x) {
  const [coarse, fine] = pyramid.decomposeSync(x, { stages: 2 });
  fine.dispose();
  return coarse;
}
function up(y, shape) {
  const zero = Tensor.zeros(shape);
  const out = pyramid.recomposeSync([y, zero]);
  zero.dispose();
  return out;
}
function line(name, r) {
  const b = r.bandLevels;
  const levels = b.resolutions.map((res, i) => `${res}px ${b.frechet[i].toFixed(4)} (detail ${(b.rmsGenerated[i] / b.rmsReal[i]).toFixed(2)})`).join(', ');
  return `${name.padEnd(40)} SWD ${r.swd ? r.swd.mean.toFixed(1) : '-'}  pix16 ${r.frechet.pix16 !== undefined ? r.frechet.pix16.toFixed(3) : '-'}  bands ${r.frechet.bands.toFixed(4)}  [${levels}]`;
}

(async () => {
  if (flag('threads')) setThreads(Number(flag('threads')));
  const dataset = flag('dataset', 'fashion-mnist');
  const split = flag('split', 'validation');
  if (split !== 'validation' && split !== 'test') throw new Error(`--split: expected 'validation' or 'test', got '${split}'`);
  const n = Number(flag('samples', '1000'));
  const m = /^(\d+),(\d+)(?:~([0-9.]+))?(?:s(-?[0-9.]+))?$/.exec(flag('variant', '35,5~0.95s0.75'));
  if (!m) throw new Error('--variant: expected N1,N2[~TAU][sM]');
  const model = Model.load(flag('checkpoint'));
  if (model.config.stages !== 2) throw new Error('--checkpoint: expected a 2-stage model');
  if ((model.config.decomposition ?? 'laplacian') !== 'laplacian') throw new Error('--checkpoint: expected a model on the Laplacian pyramid (the consistent one is consistent already)');
  const real = await loadImageSet(dataset, { offset: split === 'test' ? 1000 : 0, limit: 1000, imageSize: model.config.height });
  const k = model.config.numClasses;
  const labels = k > 0 ? Array.from({ length: n }, (_, i) => Math.floor(i / 8) % k) : undefined;
  const r = await new Sampler(model).sample({
    n, labels, seed: 1, stepsPerStage: [Number(m[1]), Number(m[2])], thresholds: m[3] ? [Number(m[3])] : undefined,
    stageTimeShifts: m[4] === undefined ? undefined : [0, Number(m[4])],
  });
  const x = r.images, c = r.levels[0];
  const e = values(c), dx = values(down(x));
  for (let i = 0; i < e.length; i++) e[i] -= dx[i];
  const y = Float32Array.from(e);
  for (let it = 0; it < 12; it++) {  // contraction <= 1/2 per step: 12 steps leave < 3e-4 of e
    const duy = values(down(up(Tensor.from(y, c.shape), x.shape)));
    for (let i = 0; i < y.length; i++) y[i] += e[i] - duy[i];
  }
  const correction = values(up(Tensor.from(y, c.shape), x.shape));
  const opts = { seed: 0 };
  console.log(`${dataset} ${split}, ${n} samples, ${flag('variant', '35,5~0.95s0.75')}`);
  console.log(line('as sampled', await evaluate(x, real, opts)));
  for (const alpha of flag('alphas', '0.5,1').split(',').map(Number)) {
    const v = values(x);
    for (let i = 0; i < v.length; i++) v[i] += alpha * correction[i];
    console.log(line(`consistent with the coarse, alpha ${alpha}`, await evaluate(Tensor.from(v, x.shape), real, opts)));
  }
  const realCoarse = down(real);
  console.log(line('coarse stage alone vs real 16 px', await evaluate(c, realCoarse, { seed: 0, swd: false, frechet: ['bands'], precisionRecall: false })));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
