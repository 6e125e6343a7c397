// Post-hoc EMA (lib/posthoc-ema.ts): sigma_rel <-> gamma against EDM2's published pairs, the profile
// inner product against numerical quadrature, the trainer's discrete power EMA against its profile,
// reconstructions of other EMA lengths against the EMA computed directly (bounded by the profile
// error the fit reports, by Cauchy-Schwarz), snapshots of a real model and the file combination
// against a float64 sum done here, the CLI, and bad input.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  gammaOfSigmaRel, MAX_SIGMA_REL, Model, posthocEma, posthocEmaCoefficients, profileInnerProduct, readSafetensors, readSafetensorsMetadata,
  readSnapshotProfile, saveEmaSnapshot, sigmaRelOfGamma, Tensor, writeSafetensors,
} from '../lib';
import type { EmaProfile, ModelBatch, ModelConfig } from '../lib';
import { caught } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-posthoc-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// The profile of a power EMA read at step t, as a function of training time tau.
const profile = (p: EmaProfile) => (tau: number) => (tau > 0 && tau <= p.step ? ((p.gamma + 1) * tau ** p.gamma) / p.step ** (p.gamma + 1) : 0);

// The trainer's rule, in float64: ema_n = d_n ema_{n-1} + (1 - d_n) theta_n, d_n = (1 - 1/n)^(gamma + 1).
function directEma(theta: Float64Array[], gamma: number, step: number): Float64Array {
  const ema = new Float64Array(theta[0].length);
  for (let n = 1; n <= step; n++) {
    const d = (1 - 1 / n) ** (gamma + 1);
    for (let i = 0; i < ema.length; i++) ema[i] = d * ema[i] + (1 - d) * theta[n - 1][i];
  }
  return ema;
}

// A weight trajectory: theta[n - 1] after step n, for 64 coordinates; random walks with drifts and
// oscillations of different periods, so that EMA lengths give visibly different averages.
function trajectory(steps: number, seed: number): Float64Array[] {
  let s = seed >>> 0 || 1;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296) * 2 - 1;
  const dims = 64;
  const drift = Array.from({ length: dims }, () => rand() * 0.01);
  const period = Array.from({ length: dims }, () => 50 + 400 * Math.abs(rand()));
  const walk = new Float64Array(dims);
  const out: Float64Array[] = [];
  for (let n = 1; n <= steps; n++) {
    const th = new Float64Array(dims);
    for (let i = 0; i < dims; i++) {
      walk[i] += 0.05 * rand();
      th[i] = walk[i] + drift[i] * n + Math.sin((2 * Math.PI * n) / period[i]);
    }
    out.push(th);
  }
  return out;
}

describe('post-hoc EMA: the profiles', () => {
  test('sigma_rel and gamma: EDM2 pairs (6.94 <-> 0.10, 16.97 <-> 0.05), round trips, the range', () => {
    expect(sigmaRelOfGamma(6.94)).toBeCloseTo(0.1, 3);
    expect(sigmaRelOfGamma(16.97)).toBeCloseTo(0.05, 3);
    expect(MAX_SIGMA_REL).toBeCloseTo(Math.sqrt(1 / 12), 12);
    for (const g of [0.05, 1, 6.94, 16.97, 100, 5000]) expect(gammaOfSigmaRel(sigmaRelOfGamma(g)) / g).toBeCloseTo(1, 9);
    expect(gammaOfSigmaRel(MAX_SIGMA_REL)).toBeLessThan(1e-9);
    // longer EMAs (larger sigma_rel) have smaller gamma
    expect(gammaOfSigmaRel(0.15)).toBeLessThan(gammaOfSigmaRel(0.1));
    for (const bad of [0, -0.1, 0.3, NaN, Infinity]) {
      const e = caught(() => gammaOfSigmaRel(bad));
      expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
      expect(e.message).toContain('sigmaRel');
    }
  });

  test('the inner product of two profiles against midpoint quadrature', () => {
    const pairs: [EmaProfile, EmaProfile][] = [
      [{ step: 1000, gamma: 6.94 }, { step: 1000, gamma: 6.94 }],
      [{ step: 400, gamma: 16.97 }, { step: 1000, gamma: 6.94 }],
      [{ step: 1000, gamma: 3 }, { step: 250, gamma: 0.5 }],
      [{ step: 7, gamma: 0 }, { step: 9, gamma: 2 }],
    ];
    for (const [a, b] of pairs) {
      const pa = profile(a);
      const pb = profile(b);
      const end = Math.min(a.step, b.step);
      const n = 200000;
      let sum = 0;
      for (let k = 0; k < n; k++) {
        const tau = ((k + 0.5) * end) / n;
        sum += pa(tau) * pb(tau);
      }
      sum *= end / n;
      expect(profileInnerProduct(a, b) / sum).toBeCloseTo(1, 6);
      expect(profileInnerProduct(b, a) / profileInnerProduct(a, b)).toBeCloseTo(1, 13);
    }
    // steps in the millions and gamma in the hundreds stay finite (computed in logs)
    const big = profileInnerProduct({ step: 5e6, gamma: 300 }, { step: 4e6, gamma: 250 });
    expect(Number.isFinite(big) && big > 0).toBe(true);
  });

  test("the trainer's discrete power EMA is its profile applied to weights held over each step", () => {
    const theta = trajectory(300, 3);
    for (const gamma of [0.5, 6.94, 16.97]) {
      const direct = directEma(theta, gamma, 300);
      const viaProfile = new Float64Array(64);
      for (let n = 1; n <= 300; n++) {
        // integral of the profile over (n - 1, n]
        const w = (n ** (gamma + 1) - (n - 1) ** (gamma + 1)) / 300 ** (gamma + 1);
        for (let i = 0; i < 64; i++) viaProfile[i] += w * theta[n - 1][i];
      }
      for (let i = 0; i < 64; i++) expect(Math.abs(direct[i] - viaProfile[i])).toBeLessThan(1e-11 * (1 + Math.abs(direct[i])));
    }
  });
});

describe('post-hoc EMA: reconstruction', () => {
  const steps = 2000;
  const theta = trajectory(steps, 11);
  const snapshotSteps = Array.from({ length: 20 }, (_, i) => (i + 1) * 100);
  const snapshotsOf = (gammas: number[]) => gammas.flatMap((gamma) => snapshotSteps.map((step) => ({ step, gamma })));
  const emaAt = (p: EmaProfile) => directEma(theta, p.gamma, p.step);

  // Cauchy-Schwarz: |sum_i c_i ema_i - ema_target| <= ||sum c_i p_i - p_target|| * ||theta||, per
  // coordinate, with ||theta||^2 = sum_n theta_n^2 (the weights held over each unit step).
  function checkReconstruction(snapshots: EmaProfile[], target: EmaProfile): number {
    const fit = posthocEmaCoefficients(snapshots, target);
    const direct = emaAt(target);
    const rec = new Float64Array(64);
    snapshots.forEach((s, i) => {
      const e = emaAt(s);
      for (let k = 0; k < 64; k++) rec[k] += fit.coefficients[i] * e[k];
    });
    const targetNorm = Math.sqrt(profileInnerProduct(target, target));
    let worst = 0;
    for (let k = 0; k < 64; k++) {
      let norm2 = 0;
      for (let n = 0; n < target.step; n++) norm2 += theta[n][k] ** 2;
      const bound = fit.relativeError * targetNorm * Math.sqrt(norm2);
      expect(Math.abs(rec[k] - direct[k])).toBeLessThanOrEqual(bound * (1 + 1e-6) + 1e-9);
      worst = Math.max(worst, Math.abs(rec[k] - direct[k]));
    }
    return worst;
  }

  test("a snapshot's own profile comes back as that snapshot alone", () => {
    const snaps = snapshotsOf([6.94]);
    const fit = posthocEmaCoefficients(snaps, { step: 1500, gamma: 6.94 });
    fit.coefficients.forEach((c, i) => expect(Math.abs(c - (snaps[i].step === 1500 ? 1 : 0))).toBeLessThan(1e-6));
    expect(fit.relativeError).toBeLessThan(1e-6);
  });

  test('other EMA lengths from one tracked length: within the bound, and close for nearby lengths', () => {
    const snaps = snapshotsOf([6.94]);
    for (const gamma of [3, 10, 16.97]) {
      const fit = posthocEmaCoefficients(snaps, { step: steps, gamma });
      expect(fit.relativeError).toBeLessThan(0.2);
      checkReconstruction(snaps, { step: steps, gamma });
    }
    // between snapshots too: the EMA at step 1550 from snapshots up to 1500
    const before = snaps.filter((s) => s.step <= 1550);
    checkReconstruction(before, { step: 1550, gamma: 6.94 });
  });

  test('two tracked lengths (EDM2: 0.05 and 0.10) fit other lengths better than one, and the direct EMA closely', () => {
    const one = snapshotsOf([6.94]);
    const two = snapshotsOf([16.97, 6.94]);
    for (const gamma of [4, 10, 25]) {
      const target = { step: steps, gamma };
      const e1 = posthocEmaCoefficients(one, target).relativeError;
      const e2 = posthocEmaCoefficients(two, target).relativeError;
      expect(e2).toBeLessThan(e1);
      expect(e2).toBeLessThan(0.05);
      const worst = checkReconstruction(two, target);
      const direct = emaAt(target);
      const scale = Math.max(...direct.map(Math.abs));
      expect(worst).toBeLessThan(0.05 * scale);
    }
  });

  test('bad profiles are errors naming the argument', () => {
    const cases: [EmaProfile[], EmaProfile, string][] = [
      [[], { step: 10, gamma: 1 }, 'snapshots'],
      [[{ step: 0, gamma: 1 }], { step: 10, gamma: 1 }, 'snapshots[0].step'],
      [[{ step: 5, gamma: NaN }], { step: 10, gamma: 1 }, 'snapshots[0].gamma'],
      [[{ step: 5, gamma: 1 }], { step: 2.5, gamma: 1 }, 'target.step'],
      [[{ step: 5, gamma: 1 }], { step: 10, gamma: -2 }, 'target.gamma'],
    ];
    for (const [s, t, what] of cases) {
      const e = caught(() => posthocEmaCoefficients(s, t));
      expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
      expect(e.message).toContain(what);
    }
  });
});

describe('post-hoc EMA: snapshots of a model', () => {
  const config: ModelConfig = { stages: 2, channels: 1, height: 16, width: 16, patchSizes: [2, 4], hidden: 32, depth: 1, heads: 2, numClasses: 3 };
  const batch = (seed: number): ModelBatch => ({
    x: [Tensor.randn([2, 1, 8, 8], { seed }), Tensor.randn([2, 1, 16, 16], { seed: seed + 1 })],
    targets: [Tensor.randn([2, 1, 8, 8], { seed: seed + 2 }), Tensor.randn([2, 1, 16, 16], { seed: seed + 3 })],
    t: Tensor.from(new Float32Array([0.2, 0.7, 0.9, 0.4]), [2, 2]),
    labels: Tensor.from(new Int32Array([1, 2]), [2], { dtype: 'i32' }),
  });
  const dir = path.join(tmp, 'snapshots');
  const files: string[] = [];
  const emaAfter: Map<string, Float32Array>[] = [];

  beforeAll(() => {
    fs.mkdirSync(dir, { recursive: true });
    const m = Model.create(config, { maxBatch: 2, seed: 4, optimizer: { lr: 1e-2, warmupSteps: 0, emaPower: 6.94 } });
    try {
      for (let n = 1; n <= 12; n++) {
        m.trainStepSync(batch(n));
        if (n % 4 === 0) {
          const file = path.join(dir, `ema-${n}.safetensors`);
          saveEmaSnapshot(m, file);
          files.push(file);
          emaAfter.push(new Map(m.parameters().map((p) => [p.name, m.getParameter(p.name, 'ema').dataSync() as Float32Array])));
        }
      }
    } finally {
      m.dispose();
    }
  });

  test('a snapshot records its step and gamma, and loads as a model whose weights are the EMA', () => {
    expect(readSnapshotProfile(files[1])).toEqual({ step: 8, gamma: 6.94 });
    const m = Model.load(files[1]);
    try {
      for (const [name, ema] of emaAfter[1]) expect(Array.from(m.getParameter(name).dataSync())).toEqual(Array.from(ema));
    } finally {
      m.dispose();
    }
  });

  test("posthocEma writes sum_i c_i snapshot_i (float64 here) and the fit's metadata; its own profile gives the snapshot back", () => {
    const out = path.join(tmp, 'out', 'ema-3.safetensors');
    const r = posthocEma(files, out, { gamma: 3 });
    expect(r.step).toBe(12);
    expect(r.files).toEqual(files);
    expect(r.coefficients).toEqual(posthocEmaCoefficients([4, 8, 12].map((step) => ({ step, gamma: 6.94 })), { step: 12, gamma: 3 }).coefficients);
    const written = readSafetensors(out);
    try {
      const meta = JSON.parse(written.metadata.posthocEma);
      expect(meta).toMatchObject({ gamma: 3, step: 12, snapshots: 3 });
      expect(meta.relativeError).toBeCloseTo(r.relativeError, 12);
      expect(written.metadata.emaSnapshot).toBeUndefined();
      for (const [name, t] of Object.entries(written.tensors)) {
        const got = t.dataSync();
        const want = new Float64Array(got.length);
        emaAfter.forEach((e, i) => e.get(name)!.forEach((v, k) => (want[k] += r.coefficients[i] * v)));
        // Math.fround of the float64 sum: exactly what a float32 store of it holds
        const off = Array.from(got).filter((v, k) => v !== Math.fround(want[k])).length;
        expect(off).toBe(0);
        expect(got.length).toBe(emaAfter[0].get(name)!.length);
      }
    } finally {
      Object.values(written.tensors).forEach((t) => t.dispose());
    }
    const same = path.join(tmp, 'out', 'same.safetensors');
    const s = posthocEma(files, same, { sigmaRel: sigmaRelOfGamma(6.94), step: 8 });
    expect(s.files).toEqual(files.slice(0, 2));
    const m = Model.load(same);
    try {
      for (const [name, ema] of emaAfter[1]) {
        const got = m.getParameter(name).dataSync();
        const worst = Math.max(...Array.from(got, (v, k) => Math.abs(v - ema[k]) / (1 + Math.abs(ema[k]))));
        expect(worst).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      m.dispose();
    }
  });

  test('bad input: a non-power model, plain checkpoints, both lengths, an early step, a corrupt header', () => {
    const plain = Model.create(config, { maxBatch: 2, seed: 4 });
    const ckpt = path.join(tmp, 'plain.safetensors');
    try {
      plain.trainStepSync(batch(1));
      let e = caught(() => saveEmaSnapshot(plain, path.join(tmp, 'x.safetensors')));
      expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
      expect(e.message).toContain('emaPower');
      plain.save(ckpt);
    } finally {
      plain.dispose();
    }
    let e = caught(() => posthocEma([ckpt], path.join(tmp, 'y.safetensors'), { sigmaRel: 0.1 }));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
    expect(e.message).toContain('not an EMA snapshot');
    e = caught(() => posthocEma([], path.join(tmp, 'y.safetensors'), { sigmaRel: 0.1 }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(e.message).toContain('files');
    e = caught(() => posthocEma(files, path.join(tmp, 'y.safetensors'), { sigmaRel: 0.1, gamma: 3 }));
    expect(e.message).toContain('exactly one of sigmaRel and gamma');
    e = caught(() => posthocEma(files, path.join(tmp, 'y.safetensors'), { gamma: 3, step: 3 }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(e.message).toContain('no snapshot at or before step 3');
    expect(fs.existsSync(path.join(tmp, 'y.safetensors'))).toBe(false);
    // a later snapshot that lacks a tensor the first one has
    const partial = path.join(tmp, 'partial.safetensors');
    const c = readSafetensors(files[1]);
    try {
      const [dropped, ...kept] = Object.keys(c.tensors);
      writeSafetensors(partial, Object.fromEntries(kept.map((k) => [k, c.tensors[k]])), c.metadata);
      expect(dropped).toBeDefined();
    } finally {
      Object.values(c.tensors).forEach((t) => t.dispose());
    }
    e = caught(() => posthocEma([files[0], partial], path.join(tmp, 'y.safetensors'), { gamma: 3 }));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
    expect(e.message).toContain('tensors');
    expect(fs.existsSync(path.join(tmp, 'y.safetensors'))).toBe(false);
    const corrupt = path.join(tmp, 'corrupt.safetensors');
    const bytes = fs.readFileSync(files[0]);
    bytes.writeBigUInt64LE(BigInt(bytes.length * 2), 0);
    fs.writeFileSync(corrupt, bytes);
    e = caught(() => readSafetensorsMetadata(corrupt));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
    fs.writeFileSync(corrupt, bytes.subarray(0, 5));
    e = caught(() => posthocEma([corrupt], path.join(tmp, 'y.safetensors'), { gamma: 3 }));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
  });
});

const cli = (args: string[]) =>
  execFileSync(process.execPath, [path.join(__dirname, '..', 'bin', 'decoflow.js'), ...args], { encoding: 'utf8', stdio: 'pipe' });
/** A short train command line writing to `out`. */
const trainArgs = (out: string) =>
  ['train', '--data', 'shapes', '--image-size', '16', '--grid', '4', '--batch', '4', '--warmup', '1', '--threads', '1', '--checkpoint-every', '0', '--out', out];

test('decoflow train --ema-power --ema-snapshot-every, then decoflow ema --sigma-rel', () => {
  const out = path.join(tmp, 'cli');
  const args = trainArgs(out);
  cli([...args, '--steps', '7', '--ema-power', '6.94', '--ema-snapshot-every', '3']);
  const snaps = path.join(out, 'ema-snapshots');
  // every third step and the last one
  expect(fs.readdirSync(snaps).sort()).toEqual(['ema-0000003.safetensors', 'ema-0000006.safetensors', 'ema-0000007.safetensors']);
  const printed = cli(['ema', '--snapshots', snaps, '--sigma-rel', '0.05,0.1', '--out', path.join(out, 'posthoc')]);
  expect(printed).toContain('from 3 snapshots');
  for (const s of ['0.05', '0.1']) {
    const meta = JSON.parse(readSafetensorsMetadata(path.join(out, 'posthoc', `ema-${s}.safetensors`)).posthocEma);
    expect(meta.sigmaRel).toBeCloseTo(Number(s), 12);
    expect(meta.step).toBe(7);
  }
  // a snapshot interval without a power EMA is a usage error (exit 2), as is a sigma_rel out of range
  let e = caught(() => cli([...args, '--steps', '2', '--ema-snapshot-every', '1']));
  expect((e as { status?: number }).status).toBe(2);
  expect(String((e as { stderr?: string }).stderr)).toContain('--ema-power');
  e = caught(() => cli(['experiment', '--ema-snapshot-every', '2', '--out', path.join(tmp, 'never')]));
  expect((e as { status?: number }).status).toBe(2);
  expect(fs.existsSync(path.join(tmp, 'never'))).toBe(false);
  e = caught(() => cli(['ema', '--snapshots', snaps, '--sigma-rel', '0.5']));
  expect((e as { status?: number }).status).toBe(2);
  expect(String((e as { stderr?: string }).stderr)).toContain('--sigma-rel');
});

test('train and experiment take the power EMA as --ema-sigma-rel (its length) as well as --ema-power', () => {
  const out = path.join(tmp, 'cli-sigma-rel');
  const args = trainArgs(out);
  cli([...args, '--steps', '4', '--ema-sigma-rel', '0.05', '--ema-snapshot-every', '2']);
  // the run records the exponent; EDM2's table: sigma_rel 0.05 is gamma 16.97
  const run = JSON.parse(fs.readFileSync(path.join(out, 'run.json'), 'utf8'));
  expect(run.optimizer.emaPower).toBeCloseTo(gammaOfSigmaRel(0.05), 9);
  expect(run.optimizer.emaPower).toBeCloseTo(16.97, 1);
  expect(fs.readdirSync(path.join(out, 'ema-snapshots')).length).toBe(2);
  const model = Model.load(path.join(out, 'checkpoint.safetensors'));
  try {
    expect(model.optimizerOptions.emaPower).toBeCloseTo(gammaOfSigmaRel(0.05), 9);
  } finally {
    model.dispose();
  }
  // both flags, or a length out of range: a usage error (exit 2) naming the flag, nothing written
  for (const [extra, expected] of [
    [['--ema-sigma-rel', '0.1', '--ema-power', '6.94'], 'not both'],
    [['--ema-sigma-rel', '0.5'], 'expected a number in (0, 0.289]'],
    [['--ema-sigma-rel', '0'], 'expected a number in (0, 0.289]'],
  ] as const) {
    for (const command of [trainArgs(path.join(tmp, 'never')), ['experiment', '--out', path.join(tmp, 'never')]]) {
      const e = caught(() => cli([...command, '--steps', '2', ...extra]));
      expect((e as { status?: number }).status).toBe(2);
      expect(String((e as { stderr?: string }).stderr)).toContain(`--ema-sigma-rel: `);
      expect(String((e as { stderr?: string }).stderr)).toContain(expected);
    }
  }
  expect(fs.existsSync(path.join(tmp, 'never'))).toBe(false);
});
