import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BatchLoader, Model, pyramid, readSafetensors, Sampler, shapesDataset, Tensor, Trainer, trainerDefaults, writeSafetensors } from '../lib';
import type { ModelConfig, TrainerOptions } from '../lib';
import { caught, caughtAsync } from './helpers';

const PYTHON = '/usr/bin/python3';
const REFERENCE = path.join(__dirname, 'reference', 'dfm_reference.py');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-trainer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function randomImages(b: number, c: number, h: number, w: number, seed: number): Tensor {
  // smooth images plus detail, in [-1, 1]
  const x = Tensor.randn([b, c, h, w], { seed }).dataSync() as Float32Array;
  for (let i = 0; i < x.length; i++) x[i] = Math.tanh(0.5 * x[i] + Math.sin(i * 0.05));
  return Tensor.from(x, [b, c, h, w]);
}

const cases: Array<{ name: string; config: ModelConfig; trainer: TrainerOptions; batch: number }> = [
  {
    name: 'S=1 plain flow matching, unconditional',
    config: { stages: 1, channels: 3, height: 8, width: 8, patchSizes: [2], hidden: 32, depth: 2, heads: 4, freqDim: 32 },
    trainer: { seed: 5 },
    batch: 4,
  },
  {
    name: 'S=2 with classes and label dropout',
    config: { stages: 2, channels: 2, height: 16, width: 16, patchSizes: [2, 4], hidden: 48, depth: 2, heads: 3, numClasses: 5, stageEmbedding: true, freqDim: 24 },
    trainer: { stageProbs: [0.5, 0.5], labelDropout: 0.5, stageChoice: 'batch', seed: 9 },
    batch: 4,
  },
  {
    name: 'S=3, three stage probabilities, non-default times',
    config: { stages: 3, channels: 1, height: 16, width: 16, patchSizes: [1, 2, 4], hidden: 32, depth: 2, heads: 2, numClasses: 3, freqDim: 16 },
    trainer: { stageProbs: [0.2, 0.3, 0.5], timeLocation: 0.3, priorLocation: 2.0, stageLossWeights: [1, 2.5, 0.5], stageChoice: 'batch', seed: 2 },
    batch: 3,
  },
  {
    name: 'S=3, one active stage per sample',
    config: { stages: 3, channels: 1, height: 16, width: 16, patchSizes: [1, 2, 4], hidden: 32, depth: 2, heads: 2, numClasses: 3, stageEmbedding: true, freqDim: 16 },
    trainer: { stageProbs: [0.3, 0.3, 0.4], stageChoice: 'sample', stageTimeShifts: [0, 0.5, 1], stageLossWeights: [1, 2, 3], seed: 4 },
    batch: 6,
  },
];

describe.each(cases)('the DFM loss of a training step matches the PyTorch reference: $name', ({ config, trainer: opts, batch }) => {
  test('loss <= 1e-4 relative, over steps with different active stages', () => {
    const model = Model.create(config, { maxBatch: batch, seed: 3, optimizer: { lr: 1e-2, emaDecay: 0.9 } });
    const trainer = new Trainer(model, opts);
    const images = randomImages(batch, config.channels, config.height, config.width, 11);
    const labels = config.numClasses ? Tensor.from(Int32Array.from({ length: batch }, (_, i) => i % config.numClasses!), [batch], { dtype: 'i32' }) : undefined;
    for (let i = 0; i < 3; i++) trainer.stepSync(images, labels); // move every weight away from adaLN-Zero's zeros
    const seen = new Set<number>();
    let mixed = 0; // batches whose samples train different stages
    for (let step = 3; step < 3 + 2 * config.stages; step++) {
      const ckpt = path.join(tmp, `ckpt-${config.stages}-${step}.safetensors`);
      model.save(ckpt, { optimizer: false, ema: false });
      const d = trainer.draws(step, images, labels);
      const inputs: Record<string, Tensor> = { images, t: d.t, mask: d.mask, labels: d.labels };
      d.noise.forEach((n, s) => (inputs[`noise.${s}`] = n));
      const inFile = path.join(tmp, `inputs-${config.stages}-${step}.safetensors`);
      writeSafetensors(inFile, inputs);
      const stats = trainer.stepSync(images, labels);
      expect(stats.activeStage).toBe(d.activeStage);
      seen.add(d.activeStage);
      const out = path.join(tmp, `ref-${config.stages}-${step}.safetensors`);
      const weights = opts.stageLossWeights ? [JSON.stringify(opts.stageLossWeights)] : [];
      execFileSync(PYTHON, [REFERENCE, 'loss', ckpt, inFile, out, ...weights], { stdio: ['ignore', 'pipe', 'inherit'] });
      const ref = readSafetensors(out).tensors;
      const refLoss = ref.loss.dataSync()[0];
      expect(Math.abs(stats.loss - refLoss) / refLoss).toBeLessThan(1e-4);
      // stageLoss is unweighted; the loss is their weighted sum
      const w = opts.stageLossWeights ?? stats.stageLoss.map(() => 1);
      const weighted = stats.stageLoss.reduce((acc, l, s) => acc + w[s] * l, 0);
      expect(Math.abs(stats.loss - weighted) / stats.loss).toBeLessThan(1e-9);
      // the trainer's pyramid is the reference's F.interpolate pyramid
      d.levels.forEach((lv, s) => {
        const a = lv.dataSync();
        const b = ref[`level.${s}`].dataSync();
        let err = 0;
        let big = 0;
        for (let i = 0; i < a.length; i++) {
          err = Math.max(err, Math.abs(a[i] - b[i]));
          big = Math.max(big, Math.abs(b[i]));
        }
        expect(err / big).toBeLessThan(1e-5);
      });
      // each sample's active stages are a prefix ending at its Q (the batch's Q, or with stageChoice
      // 'sample' its own, the finest of them reported); its later stages have zero noise and t = 0
      const S = config.stages;
      const t = d.t.dataSync();
      const mask = d.mask.dataSync();
      const noise = d.noise.map((n) => n.dataSync());
      const qs: number[] = [];
      for (let b = 0; b < batch; b++) {
        const q = Array.from(mask.subarray(b * S, (b + 1) * S)).lastIndexOf(1);
        qs.push(q);
        for (let s = 0; s < S; s++) {
          expect(mask[b * S + s]).toBe(s <= q ? 1 : 0);
          if (s > q) {
            expect(t[b * S + s]).toBe(0);
            const n = noise[s].length / batch;
            expect(noise[s].subarray(b * n, (b + 1) * n).every((x) => x === 0)).toBe(true);
          }
        }
      }
      expect(Math.max(...qs)).toBe(d.activeStage);
      if (trainer.options.stageChoice === 'batch') expect(new Set(qs).size).toBe(1);
      else if (new Set(qs).size > 1) mixed++;
    }
    if (trainer.options.stageChoice === 'batch') {
      if (config.stages > 1) expect(seen.size).toBeGreaterThan(1);
    } else if (config.stages > 1) expect(mixed).toBeGreaterThan(0);
    trainer.dispose();
    model.dispose();
  });
});

const small: ModelConfig = { stages: 2, channels: 3, height: 16, width: 16, patchSizes: [2, 4], hidden: 48, depth: 2, heads: 4, numClasses: 8 };

async function run(model: Model, steps: number, skip = 0): Promise<number[]> {
  const trainer = new Trainer(model, { stageProbs: [0.5, 0.5], seed: 4 });
  const loader = new BatchLoader(shapesDataset({ seed: 1, imageSize: 16, size: 256 }), 8, 2);
  loader.skip(skip);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const b = await loader.next();
    losses.push((await trainer.step(b)).loss);
    b.images.dispose();
    b.labels.dispose();
  }
  trainer.dispose();
  return losses;
}

test('a short training run lowers the loss clearly', async () => {
  const model = Model.create(small, { maxBatch: 8, seed: 1, optimizer: { lr: 2e-3, warmupSteps: 5 } });
  const losses = await run(model, 80);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  expect(mean(losses.slice(-20))).toBeLessThan(0.8 * mean(losses.slice(0, 20)));
  model.dispose();
});

test('resuming from a checkpoint continues with bit-identical losses', async () => {
  const options = { maxBatch: 8, seed: 2, optimizer: { lr: 1e-3, warmupSteps: 2, emaDecay: 0.9 } };
  const straight = Model.create(small, options);
  const all = await run(straight, 6);
  const first = Model.create(small, options);
  const head = await run(first, 3);
  const ckpt = path.join(tmp, 'resume.safetensors');
  first.save(ckpt);
  const resumed = Model.load(ckpt, { maxBatch: 8 });
  expect(resumed.step).toBe(3);
  const tail = await run(resumed, 3, 3);
  expect([...head, ...tail]).toEqual(all);
  for (const m of [straight, first, resumed]) m.dispose();
});

test('a schedule of stage probabilities: step k draws as a trainer with the interpolated p_q does', () => {
  const model = Model.create(small, { maxBatch: 4 });
  const images = randomImages(4, 3, 16, 16, 3);
  const labels = Tensor.from(new Int32Array([0, 1, 2, 3]), [4], { dtype: 'i32' });
  // [1, 0] -> [0, 1] over 10 steps: every stage choice is decided by the schedule, not fixed.
  const scheduled = new Trainer(model, { stageProbs: [1, 0], stageProbsFinal: [0, 1], stageProbsSteps: 10, seed: 6 });
  expect(scheduled.options).toMatchObject({ stageProbs: [1, 0], stageProbsFinal: [0, 1], stageProbsSteps: 10 });
  const seen = new Set<number>();
  for (let k = 0; k <= 14; k++) {
    const f = Math.min(1, k / 10);
    const fixed = new Trainer(model, { stageProbs: [1 - f, f], seed: 6 });
    const a = scheduled.draws(k, images, labels), b = fixed.draws(k, images, labels);
    expect(a.activeStage).toBe(b.activeStage);
    expect(a.t.dataSync()).toEqual(b.t.dataSync());
    if (k === 0) expect(a.activeStage).toBe(0);
    if (k >= 10) expect(a.activeStage).toBe(1);
    seen.add(a.activeStage);
    for (const d of [a, b]) for (const t of [...d.levels, ...d.noise, d.t, d.mask, d.labels]) t.dispose();
    fixed.dispose();
  }
  expect(seen.size).toBe(2);
  scheduled.dispose();
  images.dispose();
  labels.dispose();
  model.dispose();
});

test('stageTimeShifts: the active stage\'s logit(t) moves by its shift, the other stages do not move', () => {
  const model = Model.create(small, { maxBatch: 4 });
  const images = randomImages(4, 3, 16, 16, 5);
  const labels = Tensor.from(new Int32Array([0, 1, 2, 3]), [4], { dtype: 'i32' });
  const plain = new Trainer(model, { stageProbs: [0, 1], seed: 3 });
  const shifted = new Trainer(model, { stageProbs: [0, 1], stageTimeShifts: [-1, 1.25], seed: 3 });
  expect(plain.options.stageTimeShifts).toEqual([0, 0]);
  expect(shifted.options.stageTimeShifts).toEqual([-1, 1.25]);
  const logit = (p: number) => Math.log(p / (1 - p));
  for (const step of [0, 7]) {
    const a = plain.draws(step, images, labels), b = shifted.draws(step, images, labels);
    expect(b.activeStage).toBe(1);
    const ta = Array.from(a.t.dataSync() as ArrayLike<number>), tb = Array.from(b.t.dataSync() as ArrayLike<number>);
    for (let i = 0; i < 4; i++) {
      expect(tb[2 * i]).toBe(ta[2 * i]); // stage 0 is an earlier stage here: its prior is not shifted
      expect(logit(tb[2 * i + 1]) - logit(ta[2 * i + 1])).toBeCloseTo(1.25, 3);
    }
    for (const d of [a, b]) for (const t of [...d.levels, ...d.noise, d.t, d.mask, d.labels]) t.dispose();
  }
  for (const x of [plain, shifted, images, labels, model]) x.dispose();
});

test('the defaults live in the native trainer: TypeScript and the CLI read them', () => {
  const model = Model.create({ stages: 2, channels: 1, height: 8, width: 8, patchSizes: [1, 2], hidden: 16, depth: 1, heads: 2, freqDim: 8 });
  const trainer = new Trainer(model);
  const d = trainerDefaults(2);
  expect(trainer.options).toEqual(d);
  expect(d.stageProbs).toHaveLength(2);
  expect(d.stageProbs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  expect(trainerDefaults(3).stageProbs).toHaveLength(3);
  expect(d.stageChoice).toBe('sample'); // one active stage per sample (docs/METHOD.md)
  const help = execFileSync(process.execPath, [path.join(__dirname, '..', 'bin', 'decoflow.js'), 'train', '--help'], { encoding: 'utf8' });
  expect(help).toContain(`(default ${d.priorLocation})`);
  expect(help).toContain(`(default: ${d.stageProbs.join(', ')} for 2 stages)`);
  trainer.dispose();
  model.dispose();
});

// Runs the CLI; throws (with its stderr in the message) when it exits non-zero.
const cli = (args: string[]) => execFileSync(process.execPath, [path.join(__dirname, '..', 'bin', 'decoflow.js'), ...args], { encoding: 'utf8', stdio: 'pipe' });

test('decoflow train --stage-time-shifts and --stage-choice are recorded in run.json; decoflow sample --stage-time-shifts and --stage-eta change the samples', () => {
  const out = path.join(tmp, 'cli-shifts');
  cli(['train', '--data', 'shapes', '--image-size', '16', '--grid', '4', '--batch', '4', '--steps', '3', '--warmup', '1', '--threads', '1',
    '--stage-time-shifts', '0,1.5', '--stage-choice', 'sample', '--checkpoint-every', '0', '--out', out]);
  const run = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8'));
  expect(run.trainer.stageTimeShifts).toEqual([0, 1.5]);
  expect(run.trainer.stageChoice).toBe('sample');
  const ckpt = path.join(out, 'checkpoint.safetensors');
  const sample = (file: string, extra: string[]) => {
    cli(['sample', '--checkpoint', ckpt, '--out', path.join(out, file), '--rows', '1', '--columns', '2', '--steps-per-stage', '3,3', '--threads', '1', ...extra]);
    return fs.readFileSync(path.join(out, file));
  };
  const plain = sample('plain.png', []);
  expect(sample('zero.png', ['--stage-time-shifts', '0,0']).equals(plain)).toBe(true);
  expect(sample('shifted.png', ['--stage-time-shifts', '0,2']).equals(plain)).toBe(false);
  expect(sample('eta-zero.png', ['--stage-eta', '0,0']).equals(plain)).toBe(true);
  expect(sample('eta.png', ['--stage-eta', '0,0.5']).equals(plain)).toBe(false);
});

test('decoflow train records the resolved stageChoice; a run.json from before stageChoice resumes with one active stage per batch', () => {
  const out = path.join(tmp, 'cli-choice');
  const args = ['--data', 'shapes', '--image-size', '16', '--grid', '4', '--batch', '4', '--warmup', '1', '--threads', '1', '--checkpoint-every', '0', '--out', out];
  cli(['train', ...args, '--steps', '2']);
  const runFile = path.join(out, 'run.json');
  const run = JSON.parse(fs.readFileSync(runFile, 'utf8'));
  expect(run.trainer.stageChoice).toBe(trainerDefaults(2).stageChoice);
  delete run.trainer.stageChoice; // as an older decoflow wrote it
  fs.writeFileSync(runFile, JSON.stringify(run));
  cli(['train', ...args, '--steps', '3', '--resume']);
  const resumed = JSON.parse(fs.readFileSync(runFile, 'utf8'));
  expect(resumed.step).toBe(3);
  expect(resumed.trainer.stageChoice).toBe('batch');
});

test('decoflow train --stage-predictions v,x makes a clean-level fine stage: recorded in run.json and the checkpoint, and it samples', () => {
  const out = path.join(tmp, 'cli-predictions');
  cli(['train', '--data', 'shapes', '--image-size', '16', '--grid', '4', '--batch', '4', '--steps', '3', '--warmup', '1', '--threads', '1',
    '--stage-predictions', 'v,x', '--clean-min-gap', '0.25', '--checkpoint-every', '0', '--out', out]);
  const run = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8'));
  expect(run.config.stagePredictions).toEqual(['v', 'x']);
  expect(run.config.cleanMinGap).toBe(0.25);
  const model = Model.load(path.join(out, 'checkpoint.safetensors'));
  expect(model.config.stagePredictions).toEqual(['v', 'x']);
  expect(model.config.cleanMinGap).toBeCloseTo(0.25, 12);
  model.dispose();
  cli(['sample', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--count', '2', '--out', path.join(out, 'gen'), '--threads', '1', '--steps-per-stage', '3,3']);
  expect(fs.readdirSync(path.join(out, 'gen')).filter((f) => f.endsWith('.png'))).toHaveLength(2);
  for (const bad of ['x', 'v,y', 'v,x,x'])
    expect(() => cli(['train', '--data', 'shapes', '--stages', '2', '--steps', '1', '--stage-predictions', bad, '--out', path.join(out, 'bad')]))
      .toThrow(/--stage-predictions: expected 2 of 'v' or 'x'/);
  expect(() => cli(['train', '--data', 'shapes', '--stages', '2', '--steps', '1', '--stage-predictions', 'v,x', '--clean-min-gap', '2', '--out', path.join(out, 'bad')]))
    .toThrow(/cleanMinGap/);
});

test('decoflow train --decomposition consistent: the checkpoint records the pyramid, and its grids and decoflow sample recompose with it', async () => {
  const out = path.join(tmp, 'cli-consistent');
  cli(['train', '--data', 'shapes', '--image-size', '16', '--grid', '4', '--batch', '4', '--steps', '3', '--warmup', '1', '--threads', '1',
    '--stages', '2', '--decomposition', 'consistent', '--checkpoint-every', '0', '--out', out]);
  const run = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8'));
  expect(run.trainer.decomposition).toBe('consistent');
  expect(run.config.decomposition).toBe('consistent');
  const ckpt = path.join(out, 'checkpoint.safetensors');
  const model = Model.load(ckpt);
  expect(model.config.decomposition).toBe('consistent');
  // the grid written by train is the one decoflow sample writes from the checkpoint (same seed and
  // steps) and the one the Sampler makes with the consistent pyramid, not the Laplacian's
  cli(['sample', '--checkpoint', ckpt, '--seed', '1', '--threads', '1', '--out', path.join(out, 'again.png')]);
  expect(Buffer.compare(fs.readFileSync(path.join(out, 'again.png')), fs.readFileSync(path.join(out, 'samples.png')))).toBe(0);
  const sampler = new Sampler(model);
  const mine = await sampler.sample({ n: 2, seed: 3, stepsPerStage: [2, 2] });
  const explicit = await sampler.sample({ n: 2, seed: 3, stepsPerStage: [2, 2], decomposition: 'consistent' });
  expect(Array.from(mine.images.dataSync())).toEqual(Array.from(explicit.images.dataSync()));
  // recomposed from the same levels with the other pyramid, the image differs: the default mattered
  const lap = pyramid.recomposeSync(mine.levels, { kind: 'laplacian' });
  expect(Array.from(lap.dataSync())).not.toEqual(Array.from(mine.images.dataSync()));
  expect(await caughtAsync(() => sampler.sample({ n: 1, seed: 0, decomposition: 'laplacian' }))).toMatchObject({
    code: 'ERR_DECOFLOW_ARG_VALUE', message: expect.stringMatching(/decomposition: the model's stages come from the 'consistent' pyramid/),
  });
  expect(caught(() => new Trainer(model, { decomposition: 'haar' }))).toMatchObject({ code: 'ERR_DECOFLOW_ARG_VALUE', message: expect.stringMatching(/Trainer: options.decomposition/) });
  for (const t of [mine.images, explicit.images, lap, ...mine.levels, ...explicit.levels]) t.dispose();
  model.dispose();
});

describe('bad trainer input', () => {
  const model = Model.create(small, { maxBatch: 4 });
  afterAll(() => model.dispose());
  test.each([
    [{ stageProbs: [0.9, 0.2] }, /sum/],
    [{ stageProbs: [1] }, /2 probabilities/],
    [{ stageProbs: [1.5, -0.5] }, /probability/],
    [{ timeScale: 0 }, /timeScale/],
    [{ labelDropout: 2 }, /labelDropout/],
    [{ decomposition: 'dct' }, /decomposition/],
    [{ stageLossWeights: [1] }, /stageLossWeights: expected 2 weights/],
    [{ stageLossWeights: [1, -1] }, /stageLossWeights\[1\]: expected a finite number >= 0/],
    [{ stageLossWeights: [0, 0] }, /at least one weight > 0/],
    [{ stageLossWeights: [1, NaN] }, /stageLossWeights/],
    [{ stageProbsFinal: [0.5, 0.5] }, /stageProbsSteps: expected the number of steps/],
    [{ stageProbsSteps: 10 }, /stageProbsSteps: given without stageProbsFinal/],
    [{ stageChoice: 'pixel' }, /stageChoice: expected 'batch' \(one active stage per batch\) or 'sample'/],
    [{ stageTimeShifts: [1] }, /stageTimeShifts: expected 2 shifts/],
    [{ stageTimeShifts: [0, Infinity] }, /stageTimeShifts\[1\]: expected a number in \[-10, 10\]/],
    [{ stageProbsFinal: [1], stageProbsSteps: 10 }, /stageProbsFinal: expected 2 probabilities/],
    [{ stageProbsFinal: [0.7, 0.7], stageProbsSteps: 10 }, /stageProbsFinal: expected probabilities summing to 1/],
  ])('%j', (opts, message) => {
    const e = caught(() => new Trainer(model, opts as TrainerOptions));
    expect(e.code).toMatch(/ERR_DECOFLOW_(CONFIG|ARG_VALUE)/);
    expect(e.message).toMatch(message);
  });

  test('images and labels of the wrong size, type or range', async () => {
    const trainer = new Trainer(model);
    const labels = Tensor.from(Int32Array.from([0, 1]), [2], { dtype: 'i32' });
    expect((await caughtAsync(() => trainer.step(Tensor.zeros([2, 3, 32, 32]), labels))).code).toBe('ERR_DECOFLOW_SHAPE');
    expect((await caughtAsync(() => trainer.step(Tensor.zeros([5, 3, 16, 16]), labels))).code).toBe('ERR_DECOFLOW_SHAPE');
    const bad = Tensor.from(Int32Array.from([0, 8]), [2], { dtype: 'i32' });
    const e = await caughtAsync(() => trainer.step(Tensor.randn([2, 3, 16, 16], { seed: 1 }), bad));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(e.message).toMatch(/labels\[1\] = 8/);
    expect((await caughtAsync(() => trainer.step(Tensor.randn([2, 3, 16, 16]), undefined))).code).toBe('ERR_DECOFLOW_ARG_TYPE');
    expect(caught(() => trainer.stepSync('x' as never)).code).toBe('ERR_DECOFLOW_ARG_TYPE');
    trainer.dispose();
    expect(caught(() => trainer.stepSync(Tensor.zeros([1, 3, 16, 16]), labels)).code).toBe('ERR_DECOFLOW_DISPOSED');
  });
});
