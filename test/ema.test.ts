// The EMA of the weights: the warm-up rule (default), the fixed decay, and the power-function EMA,
// each against a hand computation in float64 from the raw weights after every step; the decay each
// step reports; what a checkpoint records (and how one written before the warm-up existed resumes);
// bad options.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Model, ModelBatch, ModelConfig, OptimizerOptions, readSafetensors, Tensor, writeSafetensors } from '../lib';

const config: ModelConfig = {
  stages: 2, channels: 1, height: 16, width: 16, patchSizes: [2, 4], hidden: 32, depth: 1, heads: 2, numClasses: 3,
};

function batch(seed: number): ModelBatch {
  const B = 2;
  return {
    x: [Tensor.randn([B, 1, 8, 8], { seed }), Tensor.randn([B, 1, 16, 16], { seed: seed + 1 })],
    targets: [Tensor.randn([B, 1, 8, 8], { seed: seed + 2 }), Tensor.randn([B, 1, 16, 16], { seed: seed + 3 })],
    t: Tensor.from(new Float32Array([0.2, 0.7, 0.9, 0.4]), [B, 2]),
    labels: Tensor.from(new Int32Array([1, 2]), [B], { dtype: 'i32' }),
  };
}

// Parameters that change from step 1 (adaLN and final layers start at zero and move too, but a
// weight with a nonzero start shows the EMA's memory of the initial value best).
const NAMES = ['blocks.0.attn.qkv.weight', 'final_layers.1.linear.weight', 't_embedders.0.mlp.0.weight'];

// Trains `steps` steps and checks the EMA after each against ema_n = d_n ema_{n-1} + (1 - d_n) p_n
// (float64, from the raw weights read back), with d_n = decay(n); returns the reported decays.
function checkEma(options: OptimizerOptions, decay: (n: number) => number, steps = 12): number[] {
  const m = Model.create(config, { maxBatch: 2, seed: 5, optimizer: { lr: 1e-2, warmupSteps: 0, ...options } });
  const reported: number[] = [];
  try {
    const names = NAMES.filter((n) => m.parameters().some((p) => p.name === n));
    expect(names.length).toBe(NAMES.length);
    const ema = new Map(names.map((n) => [n, Float64Array.from(m.getParameter(n).dataSync())]));
    for (let n = 1; n <= steps; n++) {
      const r = m.trainStepSync(batch(n));
      reported.push(r.emaDecay);
      const d = decay(n);
      expect(r.emaDecay).toBeCloseTo(d, 12);
      for (const name of names) {
        const p = m.getParameter(name).dataSync();
        const e = ema.get(name)!;
        for (let i = 0; i < e.length; i++) e[i] = d * e[i] + (1 - d) * p[i];
        const got = m.getParameter(name, 'ema').dataSync();
        let err = 0, scale = 0;
        for (let i = 0; i < e.length; i++) {
          err = Math.max(err, Math.abs(got[i] - e[i]));
          scale = Math.max(scale, Math.abs(e[i]));
        }
        // f32 state updated in f32: a few ulps of the largest weight per step.
        expect(scale).toBeGreaterThan(0);
        expect(err).toBeLessThan(1e-6 * scale * n + 1e-9);
      }
    }
  } finally {
    m.dispose();
  }
  return reported;
}

describe('EMA of the weights', () => {
  test('warm-up (the default): step n decays by min(emaDecay, (1 + n) / (10 + n))', () => {
    const d = checkEma({ emaDecay: 0.5 }, (n) => Math.min(0.5, (1 + n) / (10 + n)));
    // 2/11, 3/12, ... up to the cap 0.5 from n = 8 on: both branches of the rule are exercised.
    expect(d[0]).toBeCloseTo(2 / 11, 12);
    expect(d[11]).toBe(0.5);
  });

  test('without warm-up: the fixed decay from step 1', () => {
    checkEma({ emaDecay: 0.9, emaWarmup: false }, () => 0.9);
  });

  test('power-function EMA: decay (1 - 1/n)^(gamma + 1); step 1 copies the weights', () => {
    const d = checkEma({ emaPower: 6.94 }, (n) => (1 - 1 / n) ** 7.94);
    expect(d[0]).toBe(0);
  });

  test('a checkpoint records the rule; one written before the warm-up existed resumes without it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-ema-'));
    try {
      const m = Model.create(config, { maxBatch: 2, seed: 1, optimizer: { emaDecay: 0.99, emaPower: 3 } });
      m.trainStepSync(batch(1));
      const file = path.join(dir, 'a.safetensors');
      m.save(file);
      m.dispose();
      const back = Model.load(file, { maxBatch: 2 });
      expect(back.optimizerOptions.emaWarmup).toBe(true);
      expect(back.optimizerOptions.emaPower).toBe(3);
      back.dispose();

      // Strip the two keys, as an older decoflow wrote the metadata.
      const contents = readSafetensors(file);
      const opt = JSON.parse(contents.metadata.optimizer);
      delete opt.emaWarmup;
      delete opt.emaPower;
      const old = path.join(dir, 'old.safetensors');
      writeSafetensors(old, contents.tensors, { ...contents.metadata, optimizer: JSON.stringify(opt) });
      for (const t of Object.values(contents.tensors)) t.dispose();
      const resumed = Model.load(old, { maxBatch: 2 });
      expect(resumed.optimizerOptions.emaWarmup).toBe(false);
      expect(resumed.optimizerOptions.emaPower).toBe(0);
      expect(resumed.trainStepSync(batch(2)).emaDecay).toBe(0.99);
      resumed.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad EMA options are errors naming the option', () => {
    expect(() => Model.create(config, { optimizer: { emaPower: -1 } })).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_ARG_VALUE', message: expect.stringMatching(/emaPower/) }));
    expect(() => Model.create(config, { optimizer: { emaPower: NaN } })).toThrow(/emaPower/);
    expect(() => Model.create(config, { optimizer: { emaWarmup: 'yes' as unknown as boolean } })).toThrow(/emaWarmup/);
  });
});
