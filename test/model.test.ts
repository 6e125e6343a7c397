// The DFM transformer against the PyTorch reference (test/reference/dit_reference.py, run here so
// the fixtures are always regenerated): outputs, loss, every parameter gradient, and 10 AdamW
// steps, for five configs (1, 2 and 3 stages; with and without classes; masked and unmasked
// stages; a fine stage that predicts its clean level, with the default and a large clamp of 1 - t). Then: checkpoints read by the reference, determinism, and errors for bad input.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Model, ModelBatch, ModelConfig, memory, readSafetensors, resetPeakMemory, setThreads, getThreads, Tensor } from '../lib';
import { caught } from './helpers';

const PYTHON = '/usr/bin/python3';
const REFERENCE = path.join(__dirname, 'reference', 'dit_reference.py');
const CONFIGS = ['s1_uncond', 's2_classes_masked', 's3_nonsquare', 's2_clean_fine', 's2_clean_fine_gap'];

// Tolerances (relative, in the L2 norm of the whole tensor).
const OUT_TOL = 1e-4;
const LOSS_TOL = 1e-4;
const GRAD_TOL = 1e-3;
const TRAIN_LOSS_TOL = 1e-4;

let dir: string;

function rel(a: Float32Array | Int32Array | Uint16Array, b: Float32Array | Int32Array | Uint16Array): number {
  expect(a.length).toBe(b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

interface Fixture {
  meta: { config: ModelConfig; loss: number; trainLosses: number[]; stages: number; optimizer: Record<string, number> };
  batch: ModelBatch;
  expected: Record<string, Tensor>;
  trained: Record<string, Tensor>;
  params: string;
}

function fixture(name: string): Fixture {
  const d = path.join(dir, name);
  const meta = JSON.parse(fs.readFileSync(path.join(d, 'meta.json'), 'utf8'));
  const b = readSafetensors(path.join(d, 'batch.safetensors')).tensors;
  const S = meta.stages;
  const stages = [...Array(S).keys()];
  return {
    meta,
    batch: { x: stages.map((s) => b[`x.${s}`]), targets: stages.map((s) => b[`v.${s}`]), t: b.t, mask: b.mask, labels: b.labels },
    expected: readSafetensors(path.join(d, 'expected.safetensors')).tensors,
    trained: readSafetensors(path.join(d, 'trained.safetensors')).tensors,
    params: path.join(d, 'params.safetensors'),
  };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-dit-'));
  execFileSync(PYTHON, [REFERENCE, 'fixtures', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe.each(CONFIGS)('DiT vs PyTorch: %s', (name) => {
  test('outputs, loss and every parameter gradient', () => {
    const f = fixture(name);
    const m = Model.load(f.params, { maxBatch: 4, optimizer: f.meta.optimizer });
    const outs = m.forwardSync(f.batch);
    expect(outs.length).toBe(f.meta.stages);
    outs.forEach((o, s) => {
      expect(o.shape).toEqual(f.expected[`out.${s}`].shape);
      expect(rel(o.dataSync(), f.expected[`out.${s}`].dataSync())).toBeLessThan(OUT_TOL);
    });
    const r = m.lossAndGradSync(f.batch);
    expect(Math.abs(r.loss - f.meta.loss) / f.meta.loss).toBeLessThan(LOSS_TOL);
    expect(r.stageLosses.reduce((a, b) => a + b, 0)).toBeCloseTo(r.loss, 10);
    const params = m.parameters();
    expect(params.map((p) => `grad.${p.name}`).sort()).toEqual(Object.keys(f.expected).filter((k) => k.startsWith('grad.')).sort());
    for (const p of params) {
      const ref = f.expected[`grad.${p.name}`];
      const g = m.getGradient(p.name).dataSync();
      const err = rel(g, ref.dataSync());
      if (!(err < GRAD_TOL)) throw new Error(`${p.name}: gradient relative error ${err}`);
    }
    m.dispose();
  });

  test('10 AdamW steps (warm-up, clipping, weight decay) and the EMA', () => {
    const f = fixture(name);
    const m = Model.load(f.params, { maxBatch: 4, optimizer: f.meta.optimizer });
    const losses: number[] = [];
    for (let i = 0; i < 10; i++) losses.push(m.trainStepSync(f.batch).loss);
    losses.forEach((l, i) => {
      expect(Math.abs(l - f.meta.trainLosses[i]) / f.meta.trainLosses[i]).toBeLessThan(TRAIN_LOSS_TOL);
    });
    expect(m.step).toBe(10);
    for (const p of m.parameters()) {
      expect(rel(m.getParameter(p.name).dataSync(), f.trained[p.name].dataSync())).toBeLessThan(1e-3);
      expect(rel(m.getParameter(p.name, 'ema').dataSync(), f.trained[`ema.${p.name}`].dataSync())).toBeLessThan(1e-3);
    }
    m.dispose();
  });
});

describe('checkpoints', () => {
  test('the reference loads a decoflow checkpoint and reproduces its outputs', () => {
    const f = fixture('s2_classes_masked');
    // Train a freshly initialised model a little so that no tensor is zero, then save it.
    const m = Model.create(f.meta.config, { maxBatch: 4, seed: 7, optimizer: { lr: 1e-2, warmupSteps: 0 } });
    for (let i = 0; i < 3; i++) m.trainStepSync(f.batch);
    const ckpt = path.join(dir, 'trained.dfm.safetensors');
    m.save(ckpt);
    const outs = m.forwardSync(f.batch);
    const loss = m.lossSync(f.batch).loss;
    const refOut = path.join(dir, 'reference_outputs.safetensors');
    execFileSync(PYTHON, [REFERENCE, 'forward', ckpt, path.join(dir, 's2_classes_masked', 'batch.safetensors'), refOut]);
    const r = readSafetensors(refOut).tensors;
    outs.forEach((o, s) => expect(rel(o.dataSync(), r[`out.${s}`].dataSync())).toBeLessThan(OUT_TOL));
    expect(Math.abs(loss - r.loss.dataSync()[0]) / loss).toBeLessThan(LOSS_TOL);

    // decoflow reads it back: weights, EMA, moments and step.
    const back = Model.load(ckpt, { maxBatch: 4 });
    expect(back.step).toBe(3);
    expect(back.optimizerOptions.lr).toBeCloseTo(1e-2, 12);
    for (const p of m.parameters())
      for (const which of ['param', 'ema', 'adam.m', 'adam.v'] as const)
        expect(back.getParameter(p.name, which).dataSync()).toEqual(m.getParameter(p.name, which).dataSync());
    // The next step is the same from the original and from the reloaded model.
    expect(back.trainStepSync(f.batch).loss).toBe(m.trainStepSync(f.batch).loss);
    m.dispose();
    back.dispose();
  });

  test('a checkpoint without optimizer state loads with a fresh optimizer', () => {
    const f = fixture('s1_uncond');
    const m = Model.load(f.params, { maxBatch: 3 });
    const p = path.join(dir, 'weights-only.safetensors');
    m.save(p, { optimizer: false, ema: false });
    const names = Object.keys(readSafetensors(p).tensors);
    expect(names.every((n) => !n.startsWith('ema.') && !n.startsWith('adam.'))).toBe(true);
    const back = Model.load(p, { maxBatch: 3 });
    expect(back.step).toBe(0);
    back.dispose();
    m.dispose();
  });

  test('the config records the pyramid: omitted for the Laplacian (older checkpoints keep their JSON), kept through save and load', () => {
    const f = fixture('s1_uncond');
    const base = { ...f.meta.config } as ModelConfig;
    const lap = Model.create(base, { maxBatch: 2 });
    expect(lap.config.decomposition).toBeUndefined();
    const p0 = path.join(dir, 'lap.safetensors');
    lap.save(p0);
    expect(JSON.parse(readSafetensors(p0).metadata.config)).not.toHaveProperty('decomposition');
    for (const kind of ['haar', 'consistent'] as const) {
      const m = Model.create({ ...base, decomposition: kind }, { maxBatch: 2 });
      expect(m.config.decomposition).toBe(kind);
      const p = path.join(dir, `${kind}.safetensors`);
      m.save(p);
      expect(JSON.parse(readSafetensors(p).metadata.config).decomposition).toBe(kind);
      const back = Model.load(p);
      expect(back.config.decomposition).toBe(kind);
      back.dispose();
      m.dispose();
    }
    expect(caught(() => Model.create({ ...base, decomposition: 'dct' as 'haar' }))).toMatchObject({
      code: 'ERR_DECOFLOW_CONFIG', message: expect.stringMatching(/decomposition: expected 'laplacian', 'haar' or 'consistent'/),
    });
    lap.dispose();
  });

  test('a config mismatch, a missing file and corrupt files are errors with codes', () => {
    const f = fixture('s1_uncond');
    expect(() => Model.load(f.params, { expectConfig: { ...f.meta.config, depth: 3 } })).toThrow(
      expect.objectContaining({ code: 'ERR_DECOFLOW_CONFIG' }),
    );
    expect(() => Model.load(path.join(dir, 'nope.safetensors'))).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_IO' }));
    const good = fs.readFileSync(f.params);
    const headerLen = Number(good.readBigUInt64LE(0));
    const header = good.subarray(8, 8 + headerLen).toString();
    const bad = (name: string, bytes: Buffer) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, bytes);
      return p;
    };
    const withHeader = (h: string) => {
      const hb = Buffer.from(h);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(hb.length));
      return Buffer.concat([len, hb, good.subarray(8 + headerLen)]);
    };
    const cases: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['short', Buffer.from([1, 2, 3])],
      ['truncated', good.subarray(0, good.length - 100)],
      ['header-too-long', Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), good.subarray(8)])],
      ['huge-header', Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x7f]), good.subarray(8)])],
      ['bad-json', withHeader(header.replace('{', '['))],
      ['offsets-out-of-range', withHeader(header.replace(/"data_offsets": ?\[0, ?(\d+)\]/, (_m, e) => `"data_offsets":[0,${Number(e) + 1e9}]`))],
      ['size-mismatch', withHeader(header.replace(/"shape": ?\[(\d+)/, (_m, d) => `"shape":[${Number(d) + 1}`))],
      ['dtype', withHeader(header.replace('"F32"', '"F64"'))],
      ['overlap', withHeader(header.replace(/"data_offsets": ?\[(\d+), ?(\d+)\]/g, (_m, a, b) => (Number(a) === 0 ? `"data_offsets":[${a},${b}]` : `"data_offsets":[0,${Number(b) - Number(a)}]`)))],
      ['bad-config', withHeader(header.replace('\\"depth\\": 2', '\\"depth\\": -2'))],
    ];
    for (const [name, bytes] of cases) {
      const p = bad(name, bytes);
      let err: { code?: string } | undefined;
      try {
        Model.load(p).dispose();
      } catch (e) {
        err = e as { code?: string };
      }
      expect({ name, code: err?.code }).toEqual({
        name,
        code: name === 'bad-config' ? 'ERR_DECOFLOW_CONFIG' : 'ERR_DECOFLOW_FORMAT',
      });
    }
  });

  test('writes are atomic: no temporary file is left and a failed write keeps the old file', () => {
    const f = fixture('s1_uncond');
    const m = Model.load(f.params, { maxBatch: 3 });
    const sub = fs.mkdtempSync(path.join(dir, 'atomic-'));
    const p = path.join(sub, 'm.safetensors');
    m.save(p);
    const before = fs.readFileSync(p);
    expect(fs.readdirSync(sub)).toEqual(['m.safetensors']);
    expect(() => m.save(path.join(sub, 'missing-dir', 'x.safetensors'))).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_IO' }));
    expect(fs.readFileSync(p).equals(before)).toBe(true);
    m.dispose();
  });
});

describe('DiT behaviour', () => {
  const config: ModelConfig = {
    stages: 2, channels: 2, height: 16, width: 16, patchSizes: [2, 4], hidden: 32, depth: 2, heads: 2,
    numClasses: 4, stageEmbedding: true,
  };
  function batch(B: number, seed: number): ModelBatch {
    const t = Tensor.from(new Float32Array(B * 2).map((_, i) => ((i * 37 + seed) % 100) / 100), [B, 2]);
    return {
      x: [Tensor.randn([B, 2, 8, 8], { seed }), Tensor.randn([B, 2, 16, 16], { seed: seed + 1 })],
      targets: [Tensor.randn([B, 2, 8, 8], { seed: seed + 2 }), Tensor.randn([B, 2, 16, 16], { seed: seed + 3 })],
      t,
      mask: Tensor.from(new Float32Array(B * 2).map((_, i) => (i % 4 === 3 ? 0 : 1)), [B, 2]),
      labels: Tensor.from(new Int32Array(B).map((_, i) => i % 5), [B], { dtype: 'i32' }),
    };
  }

  test('DiT initialisation: adaLN-Zero (zero outputs), Xavier bounds, the same seed gives the same weights', () => {
    const a = Model.create(config, { seed: 3, maxBatch: 2 });
    const b = Model.create(config, { seed: 3, maxBatch: 2 });
    const c = Model.create(config, { seed: 4, maxBatch: 2 });
    const qkv = a.getParameter('blocks.0.attn.qkv.weight').dataSync();
    const bound = Math.sqrt(6 / (32 + 96));
    expect(Math.max(...Array.from(qkv, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(qkv, Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(b.getParameter('blocks.0.attn.qkv.weight').dataSync()).toEqual(qkv);
    expect(c.getParameter('blocks.0.attn.qkv.weight').dataSync()).not.toEqual(qkv);
    for (const n of ['blocks.1.adaLN_modulation.1.weight', 'final_layers.1.linear.weight', 'final_layers.0.adaLN_modulation.1.bias'])
      expect(a.getParameter(n).dataSync().every((v) => v === 0)).toBe(true);
    const outs = a.forwardSync(batch(2, 1));
    expect(outs.every((o) => o.dataSync().every((v) => v === 0))).toBe(true);
    [a, b, c].forEach((m) => m.dispose());
  });

  test("every parameter starts as DiT's reference initialisation says (Xavier linears, N(0, 0.02) embeddings, zero adaLN and outputs)", () => {
    // The rules of DiT's initialize_weights, restated from the parameter names and shapes alone:
    // biases, adaLN modulations and the final linears are zero; the timestep MLPs and the class /
    // stage tables are N(0, 0.02); every other weight (patch embedding included, viewed as a
    // [out, in*p*p] matrix) is Xavier-uniform with a = sqrt(6 / (fan_in + fan_out)).
    const m = Model.create({ ...config, hidden: 64 }, { seed: 21, maxBatch: 1 });
    const kinds = { zero: 0, normal: 0, xavier: 0 };
    for (const { name, shape } of m.parameters()) {
      const x = Array.from(m.getParameter(name).dataSync() as ArrayLike<number>);
      const n = x.length;
      const mean = x.reduce((a, v) => a + v, 0) / n;
      const std = Math.sqrt(x.reduce((a, v) => a + (v - mean) ** 2, 0) / n);
      const maxAbs = Math.max(...x.map(Math.abs));
      const tol = 5 / Math.sqrt(2 * n);  // five standard errors of a sample standard deviation
      if (name.endsWith('.bias') || name.includes('adaLN_modulation') || /^final_layers\.\d+\.linear\./.test(name)) {
        kinds.zero++;
        expect({ name, maxAbs }).toEqual({ name, maxAbs: 0 });
      } else if (/^t_embedders\.\d+\.mlp\.[02]\.weight$/.test(name) || name.endsWith('embedding_table.weight')) {
        kinds.normal++;
        expect({ name, ok: Math.abs(std / 0.02 - 1) < tol && Math.abs(mean) < 5 * 0.02 / Math.sqrt(n) }).toEqual({ name, ok: true });
      } else {
        kinds.xavier++;
        const fanOut = shape[0];
        const fanIn = n / fanOut;
        const a = Math.sqrt(6 / (fanIn + fanOut));
        expect({ name, inBound: maxAbs <= a, reachesBound: maxAbs > 0.95 * a }).toEqual({ name, inBound: true, reachesBound: true });
        expect({ name, ok: Math.abs(std / (a / Math.sqrt(3)) - 1) < tol }).toEqual({ name, ok: true });
      }
    }
    // 2 patch embeddings + 2 x 4 block linears are Xavier; 2 x 2 timestep MLPs + 2 tables are normal.
    expect(kinds).toEqual({ zero: 2 + 4 + 2 * 4 + 2 * 2 + 2 * 4, normal: 6, xavier: 10 });
    m.dispose();
  });

  test('determinism: the same seed and thread count give bit-identical losses', async () => {
    const threads = getThreads();
    const run = async () => {
      const m = Model.create(config, { seed: 11, maxBatch: 4, optimizer: { lr: 3e-3, warmupSteps: 2 } });
      const losses: number[] = [];
      for (let i = 0; i < 4; i++) losses.push((await m.trainStep(batch(4, i))).loss);
      m.dispose();
      return losses;
    };
    const first = await run();
    expect(await run()).toEqual(first);
    setThreads(1);
    try {
      const one = await run();
      expect(await run()).toEqual(one);
    } finally {
      setThreads(threads);
    }
  });

  test('forward and lossAndGrad (async) equal their sync forms, and stepSync applies the step', async () => {
    const a = Model.create(config, { seed: 5, maxBatch: 4 });
    const b = Model.create(config, { seed: 5, maxBatch: 4 });
    for (const m of [a, b]) m.trainStepSync(batch(4, 9));  // non-zero final layers
    const bt = batch(4, 2);
    const r1 = a.lossAndGradSync(bt);
    const r2 = await b.lossAndGrad(bt);
    expect(r2.loss).toBe(r1.loss);
    expect(b.getGradient('blocks.0.mlp.fc1.weight').dataSync()).toEqual(a.getGradient('blocks.0.mlp.fc1.weight').dataSync());
    const fwd = await b.forward(bt);
    a.forwardSync(bt).forEach((o, i) => expect(fwd[i].dataSync()).toEqual(o.dataSync()));
    const s = a.stepSync();
    expect(s.step).toBe(2);
    expect(s.gradNorm).toBeGreaterThan(0);
    a.dispose();
    b.dispose();
  });

  test('a masked stage input has no effect; the null class is a valid label', () => {
    const m = Model.create(config, { seed: 2, maxBatch: 4 });
    m.trainStepSync(batch(4, 3));
    const bt = batch(4, 4);
    bt.mask = Tensor.from(new Float32Array([1, 0, 1, 0, 1, 0, 1, 0]), [4, 2]);
    bt.labels = Tensor.from(new Int32Array([4, 4, 0, 1]), [4], { dtype: 'i32' });
    const a = m.forwardSync(bt);
    const l1 = m.lossSync(bt);
    bt.x = [bt.x[0], Tensor.randn([4, 2, 16, 16], { seed: 99 })];
    const b = m.forwardSync(bt);
    expect(b[0].dataSync()).toEqual(a[0].dataSync());
    expect(l1.stageLosses[1]).toBe(0);
    m.dispose();
  });

  test('bad configs and bad batches are errors with codes', () => {
    const bad: [Partial<ModelConfig>, RegExp][] = [
      [{ patchSizes: [2, 2] }, /same token grid/],
      [{ heads: 3 }, /divisor of hidden/],
      [{ stages: 0 }, /stages/],
      [{ height: 15 }, /divisible/],
      [{ mlpRatio: NaN as unknown as number }, /./],
    ];
    for (const [patch, msg] of bad) {
      let err: { code?: string; message?: string } = {};
      try {
        Model.create({ ...config, ...patch });
      } catch (e) {
        err = e as { code?: string; message?: string };
      }
      expect(err.code === 'ERR_DECOFLOW_CONFIG' || err.code === 'ERR_DECOFLOW_FORMAT').toBe(true);
      expect(err.message).toMatch(msg);
    }
    expect(() => Model.create({ ...config, hidden: 4096, heads: 16, depth: 64 }, { maxBatch: 1 << 20 })).toThrow(
      expect.objectContaining({ code: 'ERR_DECOFLOW_OUT_OF_MEMORY' }),
    );
    const m = Model.create(config, { maxBatch: 2 });
    const ok = batch(2, 1);
    expect(() => m.forwardSync({ ...ok, x: [ok.x[0]] })).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_SHAPE' }));
    expect(() => m.forwardSync({ ...ok, x: [ok.x[1], ok.x[0]] })).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_SHAPE' }));
    expect(() => m.forwardSync(batch(3, 1))).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_SHAPE' }));
    expect(() => m.forwardSync({ ...ok, labels: Tensor.from(new Int32Array([0, 5]), [2], { dtype: 'i32' }) })).toThrow(
      expect.objectContaining({ code: 'ERR_DECOFLOW_ARG_VALUE', message: expect.stringMatching(/labels\[1\]/) }),
    );
    expect(() => m.forwardSync({ ...ok, labels: Tensor.from(new Float32Array([0, 1]), [2]) })).toThrow(
      expect.objectContaining({ code: 'ERR_DECOFLOW_DTYPE' }),
    );
    expect(() => m.forwardSync({ ...ok, mask: Tensor.from(new Float32Array([1, 0.5, 1, 1]), [2, 2]) })).toThrow(
      expect.objectContaining({ code: 'ERR_DECOFLOW_ARG_VALUE' }),
    );
    expect(() => m.forwardSync({ ...ok, t: Tensor.from(new Float32Array([NaN, 0, 0, 0]), [2, 2]) })).toThrow(
      expect.objectContaining({ code: 'ERR_DECOFLOW_NON_FINITE' }),
    );
    expect(() => m.lossSync({ ...ok, targets: [] })).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_SHAPE' }));
    expect(() => m.setOptimizer({ lr: -1 })).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_ARG_VALUE' }));
    expect(() => m.getParameter('nope')).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_ARG_VALUE' }));
    const disposed = ok.x[0];
    disposed.dispose();
    expect(() => m.forwardSync(ok)).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_DISPOSED' }));
    m.dispose();
    expect(() => m.forwardSync(batch(2, 1))).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_DISPOSED' }));
  });

  // The model's own buffers are sized once per (config, maxBatch); the only storage a step takes is
  // the attention op's O(N * D) backward workspace (its partial dQ), freed before the step ends.
  test('a training step allocates no lasting storage, and only the attention workspace meanwhile', () => {
    const m = Model.create(config, { seed: 1, maxBatch: 4 });
    const bt = batch(4, 5);
    m.trainStepSync(bt);
    const before = memory().cpu;
    resetPeakMemory('cpu');
    for (let i = 0; i < 3; i++) m.trainStepSync(bt);
    const after = memory().cpu;
    expect(after.bytes).toBe(before.bytes);
    expect(after.tensors).toBe(before.tensors);
    // O(N * D): bounded by 16 copies of q ([B, heads, N, head dim] = B * N * hidden floats).
    const qBytes = 4 * 16 * config.hidden * 4;
    expect(after.peakBytes - before.bytes).toBeLessThanOrEqual(16 * qBytes);
    m.dispose();
  });

  test('a second call while an async step runs is refused, not raced', async () => {
    const m = Model.create(config, { maxBatch: 4 });
    const p = m.trainStep(batch(4, 1));
    expect(() => m.lossSync(batch(4, 1))).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_BUSY', message: expect.stringMatching(/busy/) }));
    await p;
    expect(m.lossSync(batch(4, 1)).loss).toBeGreaterThan(0);
    m.dispose();
  });
});
