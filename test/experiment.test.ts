import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chartSvg, drawGrids, emaSnapshotPath, evaluate, forwardFlops, loadHeldOut, Model, parseArm, readSnapshotProfile, runExperiment, trainingFlopsPerStep } from '../lib';
import type { ArmResult, ModelConfig } from '../lib';

const base = { channels: 1, height: 32, width: 32, hidden: 64, depth: 2, heads: 2, numClasses: 10 };

describe('the FM vs DFM experiment', () => {
  test('arms: fm, dfm-P, loss weight, steps and tau', () => {
    expect(parseArm('fm', 40)).toEqual({ name: 'fm', stages: 1, stepsPerStage: [40] });
    expect(parseArm('dfm-0.7', 40)).toMatchObject({ stages: 2, stageProbs: [0.7, 0.3], stepsPerStage: [30, 10], thresholds: undefined, stageLossWeights: undefined });
    expect(parseArm('dfm-0.5@20,20~0.9', 40)).toMatchObject({ stageProbs: [0.5, 0.5], stepsPerStage: [20, 20], thresholds: [0.9] });
    expect(parseArm('dfm-0.9w4~0.8', 40)).toMatchObject({ stageProbs: [0.9, 0.1], stageLossWeights: [1, 4], thresholds: [0.8] });
    expect(parseArm('dfm-0.9>0.5w2', 40)).toMatchObject({ stageProbs: [0.9, 0.1], stageProbsFinal: [0.5, 0.5], stageLossWeights: [1, 2] });
    expect(parseArm('dfm-0.9', 40).stageProbsFinal).toBeUndefined();
    expect(parseArm('dfm-0.6w3t1.5@35,5~0.95s-0.5', 40)).toMatchObject({
      stageProbs: [0.6, 0.4], stageLossWeights: [1, 3], trainTimeShifts: [0, 1.5], stepsPerStage: [35, 5], thresholds: [0.95], sampleTimeShifts: [0, -0.5],
    });
    expect(parseArm('dfm-0.7s2', 40)).toMatchObject({ trainTimeShifts: undefined, priorLocation: undefined, sampleTimeShifts: [0, 2] });
    expect(parseArm('dfm-0.7t1e3~0.95', 40)).toMatchObject({ trainTimeShifts: [0, 1], priorLocation: 3, thresholds: [0.95] });
    expect(parseArm('dfm-0.7h@35,5', 40)).toMatchObject({ decomposition: 'haar', stepsPerStage: [35, 5] });
    expect(parseArm('dfm-0.7', 40).decomposition).toBeUndefined();
    expect(parseArm('dfm-0.6w3t1.5c@35,5~0.95s0.75', 40)).toMatchObject({ decomposition: 'consistent', trainTimeShifts: [0, 1.5], stepsPerStage: [35, 5] });
    expect(parseArm('fm-x', 40)).toEqual({ name: 'fm-x', stages: 1, stepsPerStage: [40], stagePredictions: ['x'] });
    expect(parseArm('dfm-0.6w3t1.5x@35,5~0.95s0.75', 40)).toMatchObject({ stagePredictions: ['v', 'x'], trainTimeShifts: [0, 1.5], stepsPerStage: [35, 5], sampleTimeShifts: [0, 0.75] });
    expect(parseArm('dfm-0.7hx', 40)).toMatchObject({ decomposition: 'haar', stagePredictions: ['v', 'x'] });
    expect(parseArm('dfm-0.7', 40).stagePredictions).toBeUndefined();
    expect(parseArm('dfm-0.6w3t1.5cp@30,10~0.999s1.5', 40)).toMatchObject({ decomposition: 'consistent', stageChoice: 'sample', stepsPerStage: [30, 10], thresholds: [0.999], sampleTimeShifts: [0, 1.5] });
    expect(parseArm('dfm-0.7xp', 40)).toMatchObject({ stagePredictions: ['v', 'x'], stageChoice: 'sample' });
    expect(parseArm('dfm-0.7xp', 40).cleanMinGap).toBeUndefined();
    expect(parseArm('dfm-0.6w3t1.5cx0.25p@30,10~0.999s1.5', 40)).toMatchObject({ stagePredictions: ['v', 'x'], cleanMinGap: 0.25, stageChoice: 'sample', stepsPerStage: [30, 10], thresholds: [0.999], sampleTimeShifts: [0, 1.5] });
    expect(parseArm('dfm-0.7', 40).stageChoice).toBeUndefined();
    expect(parseArm('dfm-0.6w3t1.5cp@30,10~0.999s0.75n0.5', 40)).toMatchObject({ sampleTimeShifts: [0, 0.75], sampleEta: [0, 0.5] });
    expect(parseArm('dfm-0.7n1', 40)).toMatchObject({ sampleEta: [0, 1] });
    expect(parseArm('dfm-0.7s1', 40).sampleEta).toBeUndefined();
    for (const bad of ['dfm', 'dfm-1.5', 'gan', 'dfm-0.5@20', 'dfm-0.9w0', 'dfm-0.9w', 'dfm-0.9>1', 'dfm-0.9>', 'dfm-0.9t', 'dfm-0.9t11', 'dfm-0.9s1t1', 'dfm-0.9s-', 'dfm-0.9e', 'dfm-0.9e1t1', 'fm-v', 'dfm-0.9xh', 'dfm-0.9xx', 'dfm-0.9hc', 'dfm-0.9cx@', 'dfm-0.9pc', 'dfm-0.9pp', 'dfm-0.9x0', 'dfm-0.9x1.5', 'dfm-0.9x.', 'dfm-0.9x0.3x', 'dfm-0.9n1.5', 'dfm-0.9n', 'dfm-0.9n0.5s1', 'dfm-0.9n.'])
      expect(() => parseArm(bad, 40)).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_ARG_VALUE' }));
  });

  test('FLOPs counted by hand for one config; FM and DFM differ only by the extra stage embedding and final layer', () => {
    const fm: ModelConfig = { ...base, stages: 1, patchSizes: [4] } as ModelConfig;
    const dfm: ModelConfig = { ...base, stages: 2, patchSizes: [2, 4] } as ModelConfig;
    // 64 tokens, h = 64, mlp 256, patch 16 values (FM) / 4 and 16 (DFM), freq 256
    const T = 64, h = 64, m = 256;
    const block = 2 * h * 6 * h + 2 * T * h * 3 * h + 4 * T * T * h + 2 * T * h * h + 4 * T * h * m;
    const stage = (patch: number) => 2 * T * patch * h + 2 * (256 * h + h * h) + 2 * (2 * h * h + T * h * patch);
    expect(forwardFlops(fm)).toBe(2 * block + stage(16));
    expect(forwardFlops(dfm)).toBe(2 * block + stage(16) + stage(4));
    expect(trainingFlopsPerStep(fm, 32)).toBe(3 * 32 * forwardFlops(fm));
    // the config's own MLP ratio and frequency features count
    const small = { ...fm, mlpRatio: 2, freqDim: 32 } as ModelConfig;
    expect(forwardFlops(small)).toBe(2 * (block - 4 * T * h * m + 4 * T * h * 128) + stage(16) - 2 * 224 * h);
  });

  test('a miniature run writes results, curves, grids and checkpoints; the chart is an SVG with every arm', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-exp-'));
    try {
      const results = await runExperiment({
        datasets: ['shapes'], arms: ['fm', 'dfm-0.5'], out, model: 'tiny', batch: 4, steps: 2, evalEvery: 1, samples: 16,
        realCount: 20, nfe: 4, lr: 1e-3, emaDecay: 0.9, seed: 0,
      });
      expect(results.map((r: ArmResult) => r.arm.name)).toEqual(['fm', 'dfm-0.5']);
      expect(results[0].points.map((p) => p.step)).toEqual([1, 2]);
      expect(results[1].points[1].trainingFlops).toBeCloseTo(2 * results[1].flopsPerStep, 0);
      // Every evaluation has the EMA and the raw weights on the validation images; the final weights
      // meet the test images once. Raw and EMA differ (EMA 0.9 after 2 steps lags the weights), and so
      // do validation and test (other images).
      for (const r of results) {
        for (const p of r.points) {
          expect(Number.isFinite(p.raw.swd!.mean)).toBe(true);
          expect(p.raw.swd!.mean).not.toBe(p.result.swd!.mean);
        }
        expect(r.test!.step).toBe(2);
        expect(r.test!.raw.frechet.pix16).not.toBe(r.points[1].raw.frechet.pix16);
        expect(r.test!.ema.frechet.pix16).not.toBe(r.points[1].result.frechet.pix16);
      }
      for (const f of ['results.json', 'curves.png', 'curves.svg', 'grids-shapes.png', 'shapes/fm/checkpoint.safetensors', 'shapes/dfm-0.5/samples-000002.png'])
        expect(fs.existsSync(path.join(out, f))).toBe(true);
      // the floor: the validation images scored against the test images, as a generated set would be
      const floor = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).floors.shapes;
      const heldOut = await loadHeldOut('shapes', 20);
      const again = await evaluate(heldOut.validation, heldOut.test, { seed: 0 });
      expect(floor.swd.mean).toBeCloseTo(again.swd!.mean, 6);
      expect(floor.frechet.bands).toBeCloseTo(again.frechet.bands!, 6);
      // real images are nearer the test images than two steps of training make
      expect(floor.swd.mean).toBeLessThan(results[0].test!.ema.swd!.mean);
      expect(floor.frechet.pix16).toBeLessThan(results[0].test!.ema.frechet.pix16!);
      heldOut.validation.dispose();
      heldOut.test.dispose();
      const svg = chartSvg(results);
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toMatch(/dfm-0\.5/);
      expect(svg).not.toMatch(/NaN/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 120000);

  test('with emaPower and emaSnapshotEvery every arm saves EMA snapshots; the last is the checkpoint\'s EMA', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-exp-'));
    try {
      await runExperiment({
        datasets: ['shapes'], arms: ['fm'], out, model: 'tiny', batch: 2, steps: 3, evalEvery: 3, samples: 4,
        realCount: 8, nfe: 2, lr: 1e-3, emaDecay: 0.9, emaPower: 6.94, emaSnapshotEvery: 2, seed: 0,
      });
      const dir = path.join(out, 'shapes', 'fm', 'ema-snapshots');
      // snapshots without a power EMA, or a fractional interval, are refused before any training
      const base = { datasets: ['shapes'], arms: ['fm'], model: 'tiny', batch: 2, steps: 3, evalEvery: 3, samples: 4, realCount: 8, nfe: 2, lr: 1e-3, emaDecay: 0.9, seed: 0 };
      for (const [extra, message] of [[{ emaSnapshotEvery: 2 }, 'needs a power-function EMA'], [{ emaPower: 6.94, emaSnapshotEvery: 1.5 }, 'expected an integer >= 0']] as const)
        await expect(runExperiment({ ...base, ...extra, out: path.join(out, 'refused') })).rejects.toMatchObject({ code: 'ERR_DECOFLOW_ARG_VALUE', message: expect.stringContaining(message) });
      expect(fs.existsSync(path.join(out, 'refused', 'shapes'))).toBe(false);
      expect(fs.readdirSync(dir).sort()).toEqual([path.basename(emaSnapshotPath(dir, 2)), path.basename(emaSnapshotPath(dir, 3))]);
      expect(readSnapshotProfile(emaSnapshotPath(dir, 3))).toEqual({ step: 3, gamma: 6.94 });
      const ckpt = Model.load(path.join(out, 'shapes', 'fm', 'checkpoint.safetensors'));
      const snap = Model.load(emaSnapshotPath(dir, 3));
      try {
        for (const p of ckpt.parameters())
          expect(Array.from(snap.getParameter(p.name).dataSync())).toEqual(Array.from(ckpt.getParameter(p.name, 'ema').dataSync()));
      } finally {
        ckpt.dispose();
        snap.dispose();
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 120000);

  test('an absolute results file is written where it points, not inside out', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-exp-'));
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-exp-results-'));
    try {
      const file = path.join(elsewhere, 'run.json');
      const results = await runExperiment({
        datasets: ['shapes'], arms: ['fm'], out, model: 'tiny', batch: 2, steps: 1, evalEvery: 1, samples: 4,
        realCount: 8, nfe: 2, lr: 1e-3, emaDecay: 0.9, seed: 0, resultsFile: file,
      });
      const written = JSON.parse(fs.readFileSync(file, 'utf8'));
      expect(written.results.map((r: ArmResult) => r.arm.name)).toEqual(['fm']);
      // the file names the folder the samples are in, wherever the file itself lies
      expect(written.outDir).toBe(path.resolve(out));
      expect(fs.existsSync(path.join(out, 'results.json'))).toBe(false);
      expect(fs.readdirSync(out).filter((f) => f.endsWith('.json'))).toEqual([]);
      // grids drawn elsewhere from the run's folder, under another name
      await drawGrids(results, elsewhere, { runDir: () => written.outDir, name: 'budget-grids' });
      expect(fs.existsSync(path.join(elsewhere, 'budget-grids-shapes.png'))).toBe(true);
      await expect(drawGrids(results, elsewhere, { runDir: () => elsewhere })).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  }, 120000);
});
