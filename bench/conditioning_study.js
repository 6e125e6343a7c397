// Is a 2-stage DFM model's weak finest detail the fine stage's own, or does it come from the coarse
// level it is given? Runs the fine stage alone (Euler steps spaced as the sampler's, shift --shift)
// on top of (a) the held-out images' own coarse level and (b) the coarse level the sampler
// generates, each presented at the coarse times --coarse-times (re-noised to tc when tc < 1, so
// tc = 0.82 is what the trainer's default priorLocation 1.5 shows the fine stage most often), and
// prints the RMS of the fine level it produces against the held-out images' fine level (the stage's
// own level; the image's 32 px band also carries what up-sampling the coarse level adds, which
// decoflow eval's bandLevels measure). The loop is
// checked against the sampler: with tc 0.999 on the generated coarse it should give the sampler's RMS
// (within sampling noise: it draws its own noise; 300 images agree to 1e-4).
// With --fm-checkpoint (a one-stage model trained on the same data) it also compares the two
// denoisers on the detail: at each fine time t of --denoise-times, the fine stage's one-step clean
// estimate x_t + (1 - t) v (given the held-out coarse level, clean) against the held-out fine level,
// and the FM model's clean estimate of the whole image noised to t, decomposed with the DFM model's
// pyramid, its fine level against the same held-out level. The detail is mixed with unit noise at t
// either way, so equal t is equal signal-to-noise ratio (FM's estimate also has the coarse level
// noised, DFM's is given it clean); printed per t: the estimate's RMS over the real
// level's (gain), the share of the real level it recovers (<est, real> / <real, real>) and its error
// RMS over the real level's RMS (1 = no better than predicting zero).
//   node bench/conditioning_study.js --checkpoint FILE.safetensors [--dataset shapes|fashion-mnist]
//     [--samples 300] [--steps 10] [--shift 1.5] [--coarse-times 1,0.999,0.9,0.82] [--threads 1]
//     [--fm-checkpoint FM.safetensors] [--denoise-times 0.3,0.5,0.7,0.8,0.9,0.95]
const { Model, Sampler, Tensor, pyramid, loadDataset, fashionMnist, setThreads } = require('../dist/index.cjs');

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
function positiveInt(name, fallback) {
  const v = Number(flag(name, fallback));
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got '${flag(name, fallback)}'`);
  return v;
}
// The sampler's step spacing (native/dfm/schedule.cpp): evenly spaced in u, t = warp(u, m).
const warp = (u, m) => (m === 0 ? u : (Math.exp(m) * u) / (1 + (Math.exp(m) - 1) * u));
function rms(a) {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s / a.length);
}
function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
// How well an estimate recovers a real level: gain, recovered share and relative error (see above).
function recovery(est, real) {
  const rr = dot(real, real);
  let ee = 0;
  for (let i = 0; i < real.length; i++) ee += (est[i] - real[i]) ** 2;
  return `gain ${Math.sqrt(dot(est, est) / rr).toFixed(3)} share ${(dot(est, real) / rr).toFixed(3)} error ${Math.sqrt(ee / rr).toFixed(3)}`;
}
// The model's one-step clean estimate x_t + (1 - t) v of its last stage, with every stage's inputs
// and times given (x: Float32Arrays in the stages' shapes).
function cleanEstimate(model, x, shapes, times, labels) {
  const n = shapes[0][0];
  const xs = x.map((a, s) => Tensor.from(a, shapes[s]));
  const tt = Tensor.from(Float32Array.from({ length: n * times.length }, (_, i) => times[i % times.length]), [n, times.length]);
  const out = model.forwardSync({ x: xs, t: tt, labels });
  const last = x.length - 1, t = times[last], v = out[last].dataSync();
  const est = Float32Array.from(x[last], (q, i) => q + (1 - t) * v[i]);
  for (const o of [...out, ...xs, tt]) o.dispose();
  return est;
}

(async () => {
  if (flag('threads')) setThreads(positiveInt('threads'));
  const dataset = flag('dataset', 'shapes');
  if (dataset !== 'shapes' && dataset !== 'fashion-mnist') throw new Error(`--dataset: expected 'shapes' or 'fashion-mnist', got '${dataset}'`);
  const n = positiveInt('samples', '300'), steps = positiveInt('steps', '10');
  const shift = Number(flag('shift', '1.5'));
  const coarseTimes = flag('coarse-times', '1,0.999,0.9,0.82').split(',').map(Number);
  if (!(Math.abs(shift) <= 10)) throw new Error('--shift: expected a number in [-10, 10]');
  if (coarseTimes.some((t) => !(t > 0 && t <= 1))) throw new Error('--coarse-times: expected numbers in (0, 1]');
  const model = Model.load(flag('checkpoint'), { maxBatch: n });
  if (model.config.stages !== 2) throw new Error('--checkpoint: expected a 2-stage model');
  const kind = model.config.decomposition ?? 'laplacian';
  // The held-out (validation) images with their labels, as decoflow experiment scores them.
  const ds = dataset === 'shapes' ? await loadDataset('shapes', { imageSize: model.config.height, seed: 1 })
    : await fashionMnist({ split: 'test', imageSize: model.config.height, limit: n });
  const held = await ds.batch(Array.from({ length: n }, (_, i) => i));
  const [realCoarse, realFine] = pyramid.decomposeSync(held.images, { stages: 2, kind });
  const k = model.config.numClasses;
  const sampledLabels = Int32Array.from({ length: n }, (_, i) => (k > 0 ? Math.floor(i / 8) % k : 0));
  const r = await new Sampler(model).sample({
    n, labels: k > 0 ? Array.from(sampledLabels) : undefined, seed: 1,
    stepsPerStage: [30, steps], thresholds: [0.999], stageTimeShifts: [0, shift],
  });
  console.log(`${dataset}, ${n} images, ${steps} fine steps shifted by ${shift}: held-out fine RMS ${rms(realFine.dataSync()).toFixed(4)}, sampler's ${rms(r.levels[1].dataSync()).toFixed(4)}`);

  const times = Array.from({ length: steps + 1 }, (_, i) => (i === steps ? 1 : warp(i / steps, shift)));
  function fineStageRms(coarse, labels, tc) {
    const c = Float32Array.from(coarse.dataSync());
    if (tc < 1) {
      const e = Tensor.randn(coarse.shape, { seed: 7 }).dataSync();
      for (let i = 0; i < c.length; i++) c[i] = tc * c[i] + (1 - tc) * e[i];
    }
    const xc = Tensor.from(c, coarse.shape);
    const f = Float32Array.from(Tensor.randn(realFine.shape, { seed: 3 }).dataSync());
    const lab = k > 0 ? Tensor.from(labels, [n], { dtype: 'int32' }) : undefined;
    for (let i = 0; i < steps; i++) {
      const t = new Float32Array(n * 2);
      for (let j = 0; j < n; j++) { t[2 * j] = tc; t[2 * j + 1] = times[i]; }
      const xf = Tensor.from(f, realFine.shape), tt = Tensor.from(t, [n, 2]);
      const out = model.forwardSync({ x: [xc, xf], t: tt, labels: lab });
      const v = out[1].dataSync(), dt = times[i + 1] - times[i];
      for (let q = 0; q < f.length; q++) f[q] += dt * v[q];
      for (const o of [...out, xf, tt]) o.dispose();
    }
    for (const o of lab ? [xc, lab] : [xc]) o.dispose();
    return rms(f);
  }
  for (const tc of coarseTimes)
    console.log(`coarse time ${tc}: fine RMS on the held-out coarse ${fineStageRms(realCoarse, held.labels.dataSync(), tc).toFixed(4)}, on the generated coarse ${fineStageRms(r.levels[0], sampledLabels, tc).toFixed(4)}`);

  if (!flag('fm-checkpoint')) return;
  const fm = Model.load(flag('fm-checkpoint'), { maxBatch: n });
  if (fm.config.stages !== 1 || fm.config.height !== model.config.height || fm.config.channels !== model.config.channels)
    throw new Error('--fm-checkpoint: expected a one-stage model of the same image size and channels');
  const denoiseTimes = flag('denoise-times', '0.3,0.5,0.7,0.8,0.9,0.95').split(',').map(Number);
  if (denoiseTimes.some((t) => !(t >= 0 && t < 1))) throw new Error('--denoise-times: expected numbers in [0, 1)');
  const image = held.images.dataSync(), fine = realFine.dataSync(), coarse = realCoarse.dataSync();
  // the same noise draws for every t, so the rows differ only by t
  const noiseFine = Tensor.randn(realFine.shape, { seed: 3 }).dataSync();
  const noiseImage = Tensor.randn(held.images.shape, { seed: 3 }).dataSync();
  const labels = k > 0 ? held.labels : undefined;
  console.log(`one-step clean estimates of the ${kind} fine level:`);
  for (const t of denoiseTimes) {
    const xf = Float32Array.from(fine, (q, i) => t * q + (1 - t) * noiseFine[i]);
    const dfmEst = cleanEstimate(model, [coarse, xf], [realCoarse.shape, realFine.shape], [1, t], labels);
    const xi = Float32Array.from(image, (q, i) => t * q + (1 - t) * noiseImage[i]);
    const est = Tensor.from(cleanEstimate(fm, [xi], [held.images.shape], [t], labels), held.images.shape);
    const levels = pyramid.decomposeSync(est, { stages: 2, kind });
    console.log(`t ${t}: DFM fine stage ${recovery(dfmEst, fine)} | FM ${recovery(levels[1].dataSync(), fine)}`);
    for (const o of [est, ...levels]) o.dispose();
  }
  fm.dispose();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
