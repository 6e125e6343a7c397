import { flowSchedule, Model, Sampler, samplerDefaults, Tensor } from '../lib';
import { cycledLabels } from '../lib/sampler';
import { caughtAsync } from './helpers';

describe('the sampling schedule', () => {
  test('1 stage: a linear ramp', () => {
    const s = flowSchedule(1, [8]);
    expect(s.times.map((r) => r[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => i / 8));
  });

  test.each([0.5, 0.7, 0.9])('2 stages at tau %f: the paper schedule', (tau) => {
    const s = flowSchedule(2, [30, 10], [tau]);
    expect(s.times.length).toBe(41);
    for (let i = 0; i <= 30; i++) {
      expect(s.times[i][0]).toBeCloseTo((tau * i) / 30, 12);
      expect(s.times[i][1]).toBe(0);
    }
    for (let i = 0; i <= 10; i++) {
      expect(s.times[30 + i][1]).toBeCloseTo(i / 10, 12);
      expect(s.times[30 + i][0]).toBeCloseTo(tau + (1 - tau) * (i / 10), 12);
    }
    expect(s.newestStage).toEqual([...Array(30).fill(0), ...Array(10).fill(1)]);
  });

  test('3 stages: lockstep, monotone, every stage ends at 1', () => {
    const s = flowSchedule(3, [4, 3, 2], [0.6, 0.8]);
    const last = s.times[s.times.length - 1];
    expect(last).toEqual([1, 1, 1]);
    for (let i = 1; i < s.times.length; i++) for (let k = 0; k < 3; k++) expect(s.times[i][k]).toBeGreaterThanOrEqual(s.times[i - 1][k]);
    for (const row of s.times.slice(4)) {
      expect(row[0]).toBeCloseTo(0.6 + 0.4 * row[1], 12);
      if (row[2] > 0) expect(row[1]).toBeCloseTo(0.8 + 0.2 * row[2], 12);
    }
  });

  test('stageTimeShifts: every stage\'s steps even in logit(t) - m, ramps still end at tau and 1', () => {
    const warp = (u: number, m: number) => (Math.exp(m) * u) / (1 + (Math.exp(m) - 1) * u);
    const s = flowSchedule(2, [4, 5], [0.8], [-1, 1.5]);
    const uEnd = warp(0.8, 1); // warp(., -m) inverts warp(., m)
    for (let i = 0; i <= 4; i++) expect(s.times[i][0]).toBeCloseTo(warp((uEnd * i) / 4, -1), 12);
    expect(s.times[4][0]).toBe(0.8);
    for (let i = 0; i <= 5; i++) {
      expect(s.times[4 + i][1]).toBeCloseTo(warp(i / 5, 1.5), 12);
      expect(s.times[4 + i][0]).toBeCloseTo(0.8 + 0.2 * s.times[4 + i][1], 12);
    }
    expect(s.times[9]).toEqual([1, 1]);
    expect(flowSchedule(2, [4, 5], [0.8], [0, 0])).toEqual(flowSchedule(2, [4, 5], [0.8]));
    expect(() => flowSchedule(2, [4, 5], [0.8], [1])).toThrow(/stageTimeShifts: expected 2 shifts/);
    expect(() => flowSchedule(2, [4, 5], [0.8], [0, 20])).toThrow(/stageTimeShifts\[1\]: expected a number in \[-10, 10\]/);
  });

  test('bad schedules are config errors', () => {
    expect(() => flowSchedule(2, [10, 0], [0.5])).toThrow(/stepsPerStage\[1\]/);
    expect(() => flowSchedule(2, [10, 10], [1])).toThrow(/thresholds\[0\].*\(0, 1\)/);
    expect(() => flowSchedule(2, [10], [0.5])).toThrow(/stepsPerStage/);
  });
});

describe('Sampler', () => {
  const model = Model.create(
    { stages: 2, channels: 3, height: 16, width: 16, patchSizes: [2, 4], hidden: 32, depth: 2, heads: 2, numClasses: 4 },
    { maxBatch: 2, seed: 1 },
  );
  // give the zero-initialised output layers some weight so samples depend on the model
  for (const p of model.parameters())
    if (/final_layers|adaLN/.test(p.name)) model.setParameter(p.name, Tensor.randn(p.shape, { seed: p.name.length }).reshape(p.shape));
  const sampler = new Sampler(model);
  afterAll(() => model.dispose());

  test('images, levels, previews and intermediates; deterministic per seed', async () => {
    const events: number[] = [];
    const r = await sampler.sample({ n: 3, labels: [0, 1, 4], seed: 7, stepsPerStage: [4, 3], previews: true, intermediates: true, ema: false, onProgress: (p) => events.push(p.step) });
    expect(r.images.shape).toEqual([3, 3, 16, 16]);
    expect(r.levels.map((l) => l.shape)).toEqual([[3, 3, 8, 8], [3, 3, 16, 16]]);
    expect(r.previews.length).toBe(2);
    expect(r.intermediates.length).toBe(2);
    expect(events).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const v of r.images.dataSync()) expect(Number.isFinite(v)).toBe(true);
    // the full preview is the image; the final intermediate is the image too
    expect(Array.from(r.previews[1].dataSync())).toEqual(Array.from(r.images.dataSync()));
    expect(Array.from(r.intermediates[1].dataSync())).toEqual(Array.from(r.images.dataSync()));
    const again = await sampler.sample({ n: 3, labels: [0, 1, 4], seed: 7, stepsPerStage: [4, 3], ema: false });
    expect(Array.from(again.images.dataSync())).toEqual(Array.from(r.images.dataSync()));
    const other = await sampler.sample({ n: 3, labels: [0, 1, 4], seed: 8, stepsPerStage: [4, 3], ema: false });
    expect(Array.from(other.images.dataSync())).not.toEqual(Array.from(r.images.dataSync()));
    // sample i does not depend on how many are drawn
    const one = await sampler.sample({ n: 1, labels: [0], seed: 7, stepsPerStage: [4, 3], ema: false });
    const a = one.images.dataSync();
    const b = r.images.dataSync();
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i], 4);
  });

  test('stageTimeShifts reach the integrator: zero shifts change nothing, a shift changes the samples', async () => {
    const base = { n: 2, labels: [1, 2], seed: 4, stepsPerStage: [3, 3], ema: false };
    const plain = Array.from((await sampler.sample(base)).images.dataSync());
    const zero = Array.from((await sampler.sample({ ...base, stageTimeShifts: [0, 0] })).images.dataSync());
    const shifted = Array.from((await sampler.sample({ ...base, stageTimeShifts: [0, 2] })).images.dataSync());
    expect(zero).toEqual(plain);
    expect(shifted).not.toEqual(plain);
    for (const v of shifted) expect(Number.isFinite(v)).toBe(true);
    expect(sampler.schedule({ stepsPerStage: [3, 3], stageTimeShifts: [0, 2] })).toEqual(flowSchedule(2, [3, 3], undefined, [0, 2]));
  });

  test('stageEta reaches the integrator: zeros change nothing, eta > 0 changes the samples, reproducibly', async () => {
    const base = { n: 2, labels: [1, 2], seed: 4, stepsPerStage: [3, 3], ema: false };
    const plain = Array.from((await sampler.sample(base)).images.dataSync());
    const zero = Array.from((await sampler.sample({ ...base, stageEta: [0, 0] })).images.dataSync());
    const noisy = Array.from((await sampler.sample({ ...base, stageEta: [0, 0.7] })).images.dataSync());
    const again = Array.from((await sampler.sample({ ...base, stageEta: [0, 0.7] })).images.dataSync());
    expect(zero).toEqual(plain);
    expect(noisy).not.toEqual(plain);
    expect(again).toEqual(noisy);
    for (const v of noisy) expect(Number.isFinite(v)).toBe(true);
    // the coarse stage's own eta moves the coarse level, which the fine one is conditioned on
    const coarse = await sampler.sample({ ...base, stageEta: [1, 0] });
    expect(Array.from(coarse.levels[0].dataSync())).not.toEqual(Array.from((await sampler.sample(base)).levels[0].dataSync()));
  });

  test('Heun, midpoint and guidance run; guidance changes the result', async () => {
    const base = { n: 2, labels: [1, 2], seed: 1, stepsPerStage: [3, 2], ema: false };
    const plain = (await sampler.sample(base)).images.dataSync();
    const guided = (await sampler.sample({ ...base, cfg: 3 })).images.dataSync();
    expect(Array.from(guided)).not.toEqual(Array.from(plain));
    const interval = (await sampler.sample({ ...base, cfg: 3, guidanceInterval: [2, 2] as never }).catch((e) => e)) as { code: string };
    expect(interval.code).toBe('ERR_DECOFLOW_CONFIG');
    const off = (await sampler.sample({ ...base, cfg: 3, guidanceInterval: [0.99, 1] })).images.dataSync();
    expect(Array.from(off)).not.toEqual(Array.from(guided));
    for (const solver of ['heun', 'midpoint'] as const) {
      const r = await sampler.sample({ ...base, solver });
      expect(r.images.shape).toEqual([2, 3, 16, 16]);
    }
  });

  test('an AbortSignal stops sampling promptly with an AbortError', async () => {
    const ac = new AbortController();
    let last = 0;
    const e = await caughtAsync(() =>
      sampler.sample({ n: 2, labels: [0, 0], stepsPerStage: [200, 200], onProgress: (p) => ((last = p.step), p.step === 2 && ac.abort()), signal: ac.signal }),
    );
    expect(e.code).toBe('ABORT_ERR');
    expect((e as unknown as Error).name).toBe('AbortError');
    expect(last).toBeLessThan(50);
    const pre = new AbortController();
    pre.abort();
    expect((await caughtAsync(() => sampler.sample({ n: 1, labels: [0], signal: pre.signal }))).code).toBe('ABORT_ERR');
  });

  test('without labels a class-conditional model cycles the classes (as the CLI does)', async () => {
    const base = { n: 6, seed: 3, stepsPerStage: [2, 2], ema: false };
    const cycled = await sampler.sample({ ...base, labels: [0, 1, 2, 3, 0, 1] });
    const omitted = await sampler.sample(base);
    expect(omitted.images.shape).toEqual([6, 3, 16, 16]);
    expect(Array.from(omitted.images.dataSync())).toEqual(Array.from(cycled.images.dataSync()));
    // and the labels matter: another assignment gives other images
    const other = await sampler.sample({ ...base, labels: [3, 2, 1, 0, 3, 2] });
    expect(Array.from(other.images.dataSync())).not.toEqual(Array.from(cycled.images.dataSync()));
    expect(cycledLabels(5, 2)).toEqual([0, 1, 0, 1, 0]);
  });

  test('bad options are coded errors', async () => {
    const bad = async (o: object) => (await caughtAsync(() => sampler.sample(o))).code;
    expect(await bad({ n: 2, labels: [0] })).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(await bad({ n: 1, labels: [5] })).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(await bad({ n: 1, labels: [0], stepsPerStage: [0, 3] })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], thresholds: [1.2] })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], solver: 'rk4' })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], stageTimeShifts: [0] })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], stageTimeShifts: [0, NaN] })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], stageTimeShifts: 'x' })).toMatch(/ERR_DECOFLOW/);
    expect(await bad({ n: 1, labels: [0], stageEta: [0.5] })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], stageEta: [0, 1.5] })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], stageEta: [0, NaN] })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], stageEta: [0, 0.5], solver: 'heun' })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 1, labels: [0], stageEta: 'x' })).toMatch(/ERR_DECOFLOW/);
    expect(await bad({ n: 1, labels: [0], cfg: NaN })).toBe('ERR_DECOFLOW_CONFIG');
    expect(await bad({ n: 0 })).toBe('ERR_DECOFLOW_ARG_VALUE');
  });

  test('one set of bounds for every option: cfg is checked as [0, 100] wherever it is read', async () => {
    const e = await caughtAsync(() => sampler.sample({ n: 1, labels: [0], cfg: 500 }));
    expect(e.code).toBe('ERR_DECOFLOW_CONFIG');
    expect(e.message).toMatch(/cfg: expected a number from 0 to 100, got 500/);
    expect((await sampler.sample({ n: 1, labels: [0], cfg: 100, stepsPerStage: [1, 1] })).images.shape[0]).toBe(1);
  });

  test('the defaults come from the native sampler', () => {
    const d = samplerDefaults(2);
    expect(d).toEqual(sampler.defaults);
    expect(d.stepsPerStage).toHaveLength(2);
    expect(d.thresholds).toHaveLength(1);
    expect(flowSchedule(2).times).toHaveLength(d.stepsPerStage[0] + d.stepsPerStage[1] + 1);
  });
});
