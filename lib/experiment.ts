// The DFM-versus-flow-matching experiment: trains plain flow matching (1 stage) and DFM (2 stages)
// with the same model size, batch, token grid and number of steps, so that their training FLOPs are
// equal up to the extra patch embedding and final layer (counted exactly by trainingFlops), evaluates
// every arm at the same checkpoints with the same sampling budget (function evaluations), and draws
// metric-against-compute curves and side-by-side sample grids.
//
// The held-out images are split in two: the first `realCount` are the validation set, which every
// evaluation during training uses (and which a recipe is chosen on), the next `realCount` the test
// set, which only the final weights of each arm meet, once. Every evaluation samples with the EMA
// weights and with the raw weights, so the EMA's effect is measured, not assumed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sharp } from './sharp';
import { BatchLoader, loadDataset } from './data';
import { decoflowError } from './errors';
import { evaluate, loadImageSet, type EvalResult } from './eval';
import { encodePng, grid, writeFileAtomic } from './image';
import { Model, type ModelConfig } from './model';
import { emaSnapshotPath, saveEmaSnapshot } from './posthoc-ema';
import { modelConfig } from './presets';
import { Sampler } from './sampler';
import { gridLabels } from './samples';
import { Tensor } from './tensor';
import { Trainer } from './trainer';

export interface Arm {
  /**
   * e.g. 'fm', 'dfm-0.9' (p_q = [0.9, 0.1]), 'dfm-0.5@20,20~0.9' (sampling steps [20, 20], tau 0.9),
   * 'dfm-0.9w4' (the fine stage's loss weighted 4), 'dfm-0.9>0.5' (p_q moves from [0.9, 0.1] to
   * [0.5, 0.5] over the run), 'dfm-0.6t1.5@35,5s1.5' (the fine stage trained with its times shifted by
   * 1.5 in logit space and sampled with steps packed the same way), 'fm-x' / 'dfm-0.6x' (the finest
   * stage predicts its clean level instead of its velocity).
   */
  name: string;
  stages: number;
  stageProbs?: number[];
  /** p_q at the end of training (reached linearly from stageProbs). */
  stageProbsFinal?: number[];
  stageLossWeights?: number[];
  /** The trainer's stageTimeShifts (where each stage's training times lie). */
  trainTimeShifts?: number[];
  /** The trainer's priorLocation (how clean the earlier stages are while a later one trains). */
  priorLocation?: number;
  /** The pyramid the arm trains and samples with (default Laplacian; 'h' in the spec: Haar, 'c': consistent). */
  decomposition?: 'haar' | 'consistent';
  /** What each stage's network output predicts ('x' in the spec: the last stage its clean level). */
  stagePredictions?: ('v' | 'x')[];
  /** ModelConfig.cleanMinGap ('xG' in the spec). */
  cleanMinGap?: number;
  /** The trainer's stageChoice ('p' in the spec: one active stage per sample; without it, per batch as in the paper). */
  stageChoice?: 'sample';
  stepsPerStage: number[];
  thresholds?: number[];
  /** The sampler's stageTimeShifts (how each stage's steps are spaced). */
  sampleTimeShifts?: number[];
  /** The sampler's stageEta ('nE' in the spec: [0, E], the fine stage's stochastic steps). */
  sampleEta?: number[];
}

/**
 * Parses 'fm[-x]' or 'dfm-P[>P2][wW][tM][eL][h|c][x[G]][p][@N1,N2][~TAU][sM][nE]' for a total budget of
 * `nfe` function evaluations (DFM default: 3/4 then 1/4; P2: the coarse-stage probability reached at
 * the end of training; W: the fine stage's loss weight, default 1; tM: the fine stage's training-time
 * shift; eL: the logit-normal location of the earlier (coarse) stage while the fine one trains, the
 * trainer's priorLocation; h: the Haar pyramid instead of the Laplacian, c: the consistent one; x: the
 * finest stage predicts its clean level (ModelConfig.stagePredictions), xG with G as its clamp of
 * 1 - t (cleanMinGap); p: each sample draws its own active stage (the trainer's stageChoice
 * 'sample'); sM: the fine stage's sampling-step shift; shifts in logit units, default 0; nE: the
 * fine stage's sampling eta (Sampler stageEta [0, E], stochastic Euler steps), default 0).
 */
export function parseArm(spec: string, nfe: number): Arm {
  if (spec === 'fm') return { name: 'fm', stages: 1, stepsPerStage: [nfe] };
  if (spec === 'fm-x') return { name: 'fm-x', stages: 1, stepsPerStage: [nfe], stagePredictions: ['x'] };
  const m = /^dfm-([0-9.]+)(?:>([0-9.]+))?(?:w([0-9.]+))?(?:t(-?[0-9.]+))?(?:e(-?[0-9.]+))?([hc])?(?:(x)([0-9.]+)?)?(p)?(?:@(\d+),(\d+))?(?:~([0-9.]+))?(?:s(-?[0-9.]+))?(?:n([0-9.]+))?$/.exec(spec);
  if (!m)
    throw decoflowError(
      'ERR_DECOFLOW_ARG_VALUE',
      `arm '${spec}': expected 'fm[-x]' or 'dfm-P[>P2][wW][tM][eL][h|c][x[G]][p][@N1,N2][~TAU][sM][nE]' (P: probability of the coarse stage, P2: the same at the end of training, W: the fine stage's loss weight, tM/sM: the fine stage's training-time/sampling-step shift, L: the coarse stage's time location while the fine one trains, h: the Haar pyramid, c: the consistent pyramid, x: the finest stage predicts its clean level, xG: the same with G its clamp of 1 - t, p: one active stage per sample, E: the fine stage's sampling eta in [0, 1])`,
    );
  const probs = (q: number) => [q, Math.round((1 - q) * 1e6) / 1e6];
  const p = Number(m[1]);
  const pFinal = m[2] ? Number(m[2]) : undefined;
  for (const q of [p, pFinal ?? p])
    if (!(q > 0 && q < 1)) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `arm '${spec}': the coarse-stage probability must be in (0, 1)`);
  const weight = m[3] ? Number(m[3]) : undefined;
  if (weight !== undefined && !(weight > 0 && Number.isFinite(weight)))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `arm '${spec}': the fine stage's loss weight must be a number > 0`);
  const shift = (v: string | undefined, what: string) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!(Math.abs(x) <= 10)) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `arm '${spec}': the fine stage's ${what} shift must be a number in [-10, 10]`);
    return [0, x];
  };
  const trainShift = shift(m[4], 'training-time');
  const prior = m[5] === undefined ? undefined : Number(m[5]);
  if (prior !== undefined && !Number.isFinite(prior)) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `arm '${spec}': the coarse stage's time location must be a number`);
  const gap = m[8] === undefined ? undefined : Number(m[8]);
  if (gap !== undefined && !(gap >= 0.01 && gap <= 1)) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `arm '${spec}': the clean stage's gap (x) must be a number in [0.01, 1]`);
  const first = Math.round((nfe * 3) / 4);
  const steps = m[10] ? [Number(m[10]), Number(m[11])] : [first, nfe - first];
  const tau = m[12] ? Number(m[12]) : undefined;
  const sampleShift = shift(m[13], 'sampling-step');
  const eta = m[14] === undefined ? undefined : Number(m[14]);
  if (eta !== undefined && !(eta >= 0 && eta <= 1)) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `arm '${spec}': the fine stage's sampling eta (n) must be a number in [0, 1]`);
  return {
    name: spec,
    stages: 2,
    stageProbs: probs(p),
    stageProbsFinal: pFinal === undefined ? undefined : probs(pFinal),
    stageLossWeights: weight === undefined ? undefined : [1, weight],
    trainTimeShifts: trainShift,
    priorLocation: prior,
    ...(m[6] ? { decomposition: m[6] === 'h' ? ('haar' as const) : ('consistent' as const) } : {}),
    ...(m[7] ? { stagePredictions: ['v', 'x'] as ('v' | 'x')[] } : {}),
    ...(gap !== undefined ? { cleanMinGap: gap } : {}),
    ...(m[9] ? { stageChoice: 'sample' as const } : {}),
    stepsPerStage: steps,
    thresholds: tau === undefined ? undefined : [tau],
    sampleTimeShifts: sampleShift,
    ...(eta !== undefined ? { sampleEta: [0, eta] } : {}),
  };
}

/**
 * Multiply-add FLOPs (2 per MAC) of one forward pass of one image through the DiT: patch
 * embeddings, timestep MLPs, every block's adaLN linear, qkv, attention (QK^T and AV), projection
 * and MLP, and the final layers; the elementwise work (norms, activations, softmax) is left out.
 * Every stage's embedding and final layer run whether or not the stage is masked.
 */
export function forwardFlops(c: ModelConfig): number {
  const T = (c.height / c.patchSizes[c.stages - 1]) * (c.width / c.patchSizes[c.stages - 1]);
  const h = c.hidden;
  const m = Math.floor(h * (c.mlpRatio ?? 4));
  const freqDim = c.freqDim ?? 256;
  let f = 0;
  for (let s = 0; s < c.stages; s++) {
    const patch = c.channels * c.patchSizes[s] ** 2;
    f += 2 * T * patch * h; // patch embedding
    f += 2 * (freqDim * h + h * h); // timestep MLP
    f += 2 * (h * 2 * h + T * h * patch); // final adaLN + linear
  }
  const block = 2 * h * 6 * h + 2 * T * h * 3 * h + 2 * 2 * T * T * h + 2 * T * h * h + 2 * 2 * T * h * m;
  return f + c.depth * block;
}

/** Training FLOPs of one step: forward + backward ~ 3 x forward, times the batch. */
export function trainingFlopsPerStep(c: ModelConfig, batch: number): number {
  return 3 * forwardFlops(c) * batch;
}

export interface ExperimentOptions {
  datasets: string[];
  arms: string[];
  out: string;
  model: string;
  batch: number;
  steps: number;
  evalEvery: number;
  samples: number;
  realCount: number;
  nfe: number;
  lr: number;
  emaDecay: number;
  /** EMA warm-up (default true, as in Model.create). */
  emaWarmup?: boolean;
  /** > 0: the power-function EMA with this exponent instead of emaDecay. */
  emaPower?: number;
  /** With emaPower > 0: save the EMA every this many steps (and at the end) to the arm's ema-snapshots folder, for posthocEma. */
  emaSnapshotEvery?: number;
  seed: number;
  /** The results file, relative to `out` or absolute (default results.json). */
  resultsFile?: string;
  log?: (line: string) => void;
}

export interface EvalPoint {
  step: number;
  trainingFlops: number;
  seconds: number;
  /** Samples of the EMA weights against the validation images. */
  result: EvalResult;
  /** Samples of the raw weights against the validation images. */
  raw: EvalResult;
}

/** The final weights against the test images (each arm meets them once, at the end). */
export interface TestResult {
  step: number;
  ema: EvalResult;
  raw: EvalResult;
}

export interface ArmResult {
  dataset: string;
  arm: Arm;
  config: ModelConfig;
  parameters: number;
  flopsPerStep: number;
  forwardFlops: number;
  points: EvalPoint[];
  test?: TestResult;
  trainSeconds: number;
}

async function sampleSet(model: Model, arm: Arm, n: number, seed: number, ema: boolean): Promise<Tensor> {
  const sampler = new Sampler(model);
  const labels = gridLabels(n, model.config.numClasses, 8);
  const r = await sampler.sample({ n, labels, seed, ema, stepsPerStage: arm.stepsPerStage, thresholds: arm.thresholds, stageTimeShifts: arm.sampleTimeShifts, stageEta: arm.sampleEta });
  for (const t of r.levels) t.dispose();
  return r.images;
}

/** The held-out images of a dataset: validation (choosing) and test (reporting), realCount each. */
export interface HeldOut {
  validation: Tensor;
  test: Tensor;
}

export async function loadHeldOut(dataset: string, realCount: number): Promise<HeldOut> {
  const validation = await loadImageSet(dataset, { limit: realCount, imageSize: 32 });
  try {
    const test = await loadImageSet(dataset, { offset: realCount, limit: realCount, imageSize: 32 });
    if (test.shape[0] < realCount) {
      test.dispose();
      throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `realCount: ${dataset} has too few held-out images for ${realCount} validation and ${realCount} test images`);
    }
    return { validation, test };
  } catch (e) {
    validation.dispose();
    throw e;
  }
}

export async function runArm(dataset: string, armSpec: string, o: ExperimentOptions, heldOut: HeldOut): Promise<ArmResult> {
  const log = o.log ?? (() => {});
  const arm = parseArm(armSpec, o.nfe);
  const snapshotEvery = o.emaSnapshotEvery ?? 0;
  if (!(Number.isInteger(snapshotEvery) && snapshotEvery >= 0))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `emaSnapshotEvery: expected an integer >= 0, got ${snapshotEvery}`);
  // Checked before training: the first snapshot would only fail after snapshotEvery steps.
  if (snapshotEvery > 0 && !((o.emaPower ?? 0) > 0))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', 'emaSnapshotEvery: needs a power-function EMA (emaPower > 0); post-hoc EMA combines power EMAs');
  const data = await loadDataset(dataset, { imageSize: 32, seed: o.seed });
  const config = modelConfig({ size: o.model, stages: arm.stages, channels: data.channels, imageSize: 32, numClasses: data.numClasses, grid: 8, stagePredictions: arm.stagePredictions, cleanMinGap: arm.cleanMinGap, decomposition: arm.decomposition });
  const model = Model.create(config, { maxBatch: Math.max(o.batch, o.samples), seed: o.seed, optimizer: { lr: o.lr, warmupSteps: Math.min(100, Math.floor(o.steps / 10)), emaDecay: o.emaDecay, emaWarmup: o.emaWarmup, emaPower: o.emaPower } });
  const trainer = new Trainer(model, {
    stageProbs: arm.stageProbs,
    ...(arm.stageProbsFinal ? { stageProbsFinal: arm.stageProbsFinal, stageProbsSteps: o.steps } : {}),
    stageLossWeights: arm.stageLossWeights,
    stageTimeShifts: arm.trainTimeShifts,
    priorLocation: arm.priorLocation,
    // An arm without 'p' keeps the paper's batch-wide draw, so every arm name means what it meant
    // in the earlier studies (bench/results) whatever the trainer's default.
    stageChoice: arm.stageChoice ?? 'batch',
    seed: o.seed,
  });
  const loader = new BatchLoader(data, o.batch, o.seed);
  const perStep = trainingFlopsPerStep(config, o.batch);
  const result: ArmResult = { dataset, arm, config, parameters: model.numParameters, flopsPerStep: perStep, forwardFlops: forwardFlops(config), points: [], trainSeconds: 0 };
  const dir = path.join(o.out, dataset.replace(/[^a-z0-9-]/gi, '_'), arm.name);
  await fs.promises.mkdir(dir, { recursive: true });
  let trainMs = 0;
  const snapshotDir = path.join(dir, 'ema-snapshots');
  if (snapshotEvery > 0) await fs.promises.mkdir(snapshotDir, { recursive: true });
  const snapshot = () => saveEmaSnapshot(model, emaSnapshotPath(snapshotDir, model.step));
  try {
    while (model.step < o.steps) {
      const t0 = Date.now();
      const b = await loader.next();
      await trainer.step(b);
      b.images.dispose();
      b.labels.dispose();
      trainMs += Date.now() - t0;
      if (snapshotEvery > 0 && (model.step % snapshotEvery === 0 || model.step === o.steps)) snapshot();
      if (model.step % o.evalEvery === 0 || model.step === o.steps) {
        const t1 = Date.now();
        const r = await evaluateWeights(model, arm, o, heldOut.validation, true, path.join(dir, `samples-${String(model.step).padStart(6, '0')}.png`));
        const raw = await evaluateWeights(model, arm, o, heldOut.validation, false);
        result.points.push({ step: model.step, trainingFlops: perStep * model.step, seconds: trainMs / 1000, result: r, raw });
        log(
          `${dataset} ${arm.name} step ${model.step} (${(perStep * model.step / 1e12).toFixed(2)} TFLOP, train ${(trainMs / 1000).toFixed(0)} s, eval ${((Date.now() - t1) / 1000).toFixed(0)} s), validation: ` +
            `EMA ${metricLine(r)} | raw ${metricLine(raw)}`,
        );
      }
    }
    const ema = await evaluateWeights(model, arm, o, heldOut.test, true);
    const raw = await evaluateWeights(model, arm, o, heldOut.test, false);
    result.test = { step: model.step, ema, raw };
    log(`${dataset} ${arm.name} step ${model.step}, test: EMA ${metricLine(ema)} | raw ${metricLine(raw)}`);
    // the final weights, for sampling-only studies (steps per stage, tau) afterwards
    model.save(path.join(dir, 'checkpoint.safetensors'));
  } finally {
    result.trainSeconds = trainMs / 1000;
    trainer.dispose();
    model.dispose();
    data.dispose();
  }
  return result;
}

// Samples o.samples images with the EMA or the raw weights (the same seed and labels each time) and
// evaluates them against `real`; writes the first 64 as a grid to `png` when given.
async function evaluateWeights(model: Model, arm: Arm, o: ExperimentOptions, real: Tensor, ema: boolean, png?: string): Promise<EvalResult> {
  const images = await sampleSet(model, arm, o.samples, o.seed + 1, ema);
  try {
    if (png) await writeFileAtomic(png, await encodePng(grid(firstN(images, 64), { columns: 8, scale: 2 })));
    return await evaluate(images, real, { seed: o.seed });
  } finally {
    images.dispose();
  }
}

function metricLine(r: EvalResult): string {
  return `SWD ${r.swd!.mean.toFixed(1)} FD pix16 ${r.frechet.pix16!.toFixed(3)} bands ${r.frechet.bands!.toFixed(4)} P ${r.precision!.toFixed(2)} R ${r.recall!.toFixed(2)}`;
}

function firstN(t: Tensor, n: number): Tensor {
  const [N, c, h, w] = t.shape;
  const k = Math.min(n, N);
  return Tensor.from((t.dataSync() as Float32Array).slice(0, k * c * h * w), [k, c, h, w]);
}

export async function runExperiment(o: ExperimentOptions): Promise<ArmResult[]> {
  await fs.promises.mkdir(o.out, { recursive: true });
  const results: ArmResult[] = [];
  const floors: Record<string, EvalResult> = {};
  const save = () => writeFileAtomic(path.resolve(o.out, o.resultsFile ?? 'results.json'), Buffer.from(JSON.stringify({ options: { ...o, log: undefined }, outDir: path.resolve(o.out), floors, results }, null, 2)));
  for (const dataset of o.datasets) {
    const heldOut = await loadHeldOut(dataset, o.realCount);
    try {
      // What a perfect model would score at this sample size: real images (the validation set)
      // against the test images, with the same metrics.
      floors[dataset] = await evaluate(heldOut.validation, heldOut.test, { seed: o.seed });
      (o.log ?? (() => {}))(`${dataset} floor (validation images against the test images): ${metricLine(floors[dataset])}`);
      for (const arm of o.arms) {
        results.push(await runArm(dataset, arm, o, heldOut));
        await save();
        await drawCharts(results, o.out, o.resultsFile ? `curves-${path.basename(o.resultsFile, '.json')}` : 'curves');
      }
    } finally {
      heldOut.validation.dispose();
      heldOut.test.dispose();
    }
  }
  await drawGrids(results, o.out);
  return results;
}

// ------------------------------------------------------------------------------------------------
// Charts: SVG drawn here, rasterised by sharp (librsvg).

const COLOURS = ['#222222', '#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const METRICS: Array<{ key: string; label: string; get: (r: EvalResult) => number; log?: boolean }> = [
  { key: 'swd', label: 'SWD x1e3 (mean of levels)', get: (r) => r.swd!.mean, log: true },
  { key: 'bands', label: 'FD bands (fine detail)', get: (r) => r.frechet.bands!, log: true },
  { key: 'pix16', label: 'FD pix16 (layout)', get: (r) => r.frechet.pix16!, log: true },
  { key: 'precision', label: 'precision (pix16, k=3)', get: (r) => r.precision! },
];

// Ticks of a log axis: 1, 2, 5 x powers of ten inside [lo, hi] (at least the two ends).
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) out.push(Number(v.toPrecision(3)));
    }
  return out.length >= 2 ? out : [Number(lo.toPrecision(2)), Number(hi.toPrecision(2))];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function niceTicks(lo: number, hi: number, n = 4): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= step0)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Number(v.toPrecision(6)));
  return out;
}

export function chartSvg(results: ArmResult[]): string {
  const datasets = [...new Set(results.map((r) => r.dataset))];
  const armNames = [...new Set(results.map((r) => r.arm.name))];
  const W = 300, H = 210, ml = 58, mr = 12, mt = 34, mb = 40;
  const width = METRICS.length * W, height = datasets.length * H + 40;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="11">`, `<rect width="100%" height="100%" fill="white"/>`];
  datasets.forEach((ds, row) => {
    METRICS.forEach((metric, col) => {
      const x0 = col * W, y0 = row * H;
      const series = results.filter((r) => r.dataset === ds).map((r) => ({ name: r.arm.name, pts: r.points.map((p) => [p.trainingFlops / 1e12, metric.get(p.result)] as [number, number]) }));
      const all = series.flatMap((s) => s.pts);
      if (all.length === 0) return;
      const xmax = Math.max(...all.map((p) => p[0]));
      const log = !!metric.log && all.every((p) => p[1] > 0);
      const tf = (y: number) => (log ? Math.log10(y) : y);
      let ylo = Math.min(...all.map((p) => tf(p[1]))), yhi = Math.max(...all.map((p) => tf(p[1])));
      const pad = (yhi - ylo) * 0.08 || Math.abs(yhi) * 0.1 || 1;
      ylo -= pad;
      yhi += pad;
      if (!log && metric.key !== 'precision') ylo = Math.max(0, ylo);
      const px = (x: number) => x0 + ml + ((W - ml - mr) * x) / (xmax || 1);
      const py = (y: number) => y0 + mt + (H - mt - mb) * (1 - (tf(y) - ylo) / (yhi - ylo || 1));
      parts.push(`<text x="${x0 + W / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${esc(`${ds}: ${metric.label}${log ? ' (log)' : ''}`)}</text>`);
      parts.push(`<rect x="${x0 + ml}" y="${y0 + mt}" width="${W - ml - mr}" height="${H - mt - mb}" fill="none" stroke="#999"/>`);
      for (const t of log ? logTicks(10 ** ylo, 10 ** yhi) : niceTicks(ylo, yhi)) {
        parts.push(`<line x1="${x0 + ml}" x2="${x0 + W - mr}" y1="${py(t)}" y2="${py(t)}" stroke="#eee"/>`);
        parts.push(`<text x="${x0 + ml - 4}" y="${py(t) + 4}" text-anchor="end">${t}</text>`);
      }
      for (const t of niceTicks(0, xmax)) parts.push(`<text x="${px(t)}" y="${y0 + H - mb + 14}" text-anchor="middle">${t}</text>`);
      parts.push(`<text x="${x0 + ml + (W - ml - mr) / 2}" y="${y0 + H - 10}" text-anchor="middle">training TFLOP</text>`);
      series.forEach((s) => {
        const colour = COLOURS[armNames.indexOf(s.name) % COLOURS.length];
        parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${s.pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
        for (const [x, y] of s.pts) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${colour}"/>`);
      });
    });
  });
  armNames.forEach((name, i) => {
    const x = 20 + i * 170, y = height - 16;
    parts.push(`<rect x="${x}" y="${y - 9}" width="14" height="4" fill="${COLOURS[i % COLOURS.length]}"/><text x="${x + 20}" y="${y - 3}">${esc(name)}</text>`);
  });
  parts.push(`<text x="${width - 8}" y="${height - 19}" text-anchor="end" fill="#555">lower is better (precision: higher)</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

export async function drawCharts(results: ArmResult[], out: string, name = 'curves'): Promise<void> {
  const svg = chartSvg(results);
  await writeFileAtomic(path.join(out, `${name}.svg`), Buffer.from(svg));
  await writeFileAtomic(path.join(out, `${name}.png`), await sharp()(Buffer.from(svg)).png().toBuffer());
}

export interface DrawGridsOptions {
  /** The output folder of the run that wrote each result's samples (default: `out`). */
  runDir?: (r: ArmResult) => string;
  /** File name prefix (default 'grids': grids-DATASET.png). */
  name?: string;
}

/** The last checkpoint's samples of every arm side by side, one image per dataset. */
export async function drawGrids(results: ArmResult[], out: string, options: DrawGridsOptions = {}): Promise<void> {
  const runDir = options.runDir ?? (() => out);
  for (const ds of [...new Set(results.map((r) => r.dataset))]) {
    const arms = results.filter((r) => r.dataset === ds);
    const tiles: Array<{ name: string; png: Buffer; w: number; h: number }> = [];
    for (const r of arms) {
      const last = r.points[r.points.length - 1];
      if (!last) continue;
      const file = path.join(runDir(r), ds.replace(/[^a-z0-9-]/gi, '_'), r.arm.name, `samples-${String(last.step).padStart(6, '0')}.png`);
      const png = await fs.promises.readFile(file);
      const meta = await sharp()(png).metadata();
      tiles.push({ name: `${r.arm.name} (step ${last.step}, SWD ${last.result.swd!.mean.toFixed(1)})`, png, w: meta.width!, h: meta.height! });
    }
    if (tiles.length === 0) continue;
    const gap = 16, top = 24;
    const width = tiles.reduce((a, t) => a + t.w + gap, gap), height = top + Math.max(...tiles.map((t) => t.h)) + gap;
    let x = gap;
    const parts = [`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>`];
    for (const t of tiles) {
      parts.push(`<text x="${x}" y="17">${esc(t.name)}</text>`);
      parts.push(`<image x="${x}" y="${top}" width="${t.w}" height="${t.h}" xlink:href="data:image/png;base64,${t.png.toString('base64')}"/>`);
      x += t.w + gap;
    }
    parts.push('</svg>');
    await writeFileAtomic(path.join(out, `${options.name ?? 'grids'}-${ds.replace(/[^a-z0-9-]/gi, '_')}.png`), await sharp()(Buffer.from(parts.join(''))).png().toBuffer());
  }
}
