// Flash attention through the TypeScript API: against PyTorch (float64 autograd, fixtures made at
// test time by test/reference/attention_reference.py), against a float64 reference computed here,
// a finite-difference check of the backward, the async forms, errors, and memory: attention at
// N = 8192 must not allocate anything N x N.
//
// Error measure, per output tensor: relErr(a, ref) = max_i |a_i - ref_i| / max_i |ref_i| (the
// largest error relative to the tensor's scale). f32 kernel against float64: <= 1e-5.
// (test/native/test_attention.cpp runs the larger grid of sizes, with NaN-poisoned outputs.)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  attention,
  attentionBackward,
  attentionBackwardSync,
  attentionSync,
  memory,
  resetPeakMemory,
  Tensor,
} from '../lib';

const TOL = 1e-5;

function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(a.length).toBe(ref.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(ref[i])) {
      if (a[i] !== ref[i]) return Infinity;
      continue;
    }
    if (!Number.isFinite(a[i])) return Infinity;
    num = Math.max(num, Math.abs(a[i] - ref[i]));
    den = Math.max(den, Math.abs(ref[i]));
  }
  return den > 0 ? num / den : num;
}

// Deterministic standard normals (Box-Muller on a small LCG), so inputs are random but repeatable.
function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

interface Shape {
  b: number;
  h: number;
  nq: number;
  nk: number;
  d: number;
}

// softmax(q k^T scale + mask) v and its gradients, in float64.
function reference(q: Float32Array, k: Float32Array, v: Float32Array, dO: Float32Array, s: Shape, scale: number, causal: boolean) {
  const { b, h, nq, nk, d } = s;
  const o = new Float64Array(b * h * nq * d);
  const lse = new Float64Array(b * h * nq);
  const dq = new Float64Array(o.length);
  const dk = new Float64Array(b * h * nk * d);
  const dv = new Float64Array(dk.length);
  const sc = new Float64Array(nk);
  const dp = new Float64Array(nk);
  for (let hh = 0; hh < b * h; hh++) {
    const qo = hh * nq * d;
    const ko = hh * nk * d;
    for (let i = 0; i < nq; i++) {
      const n = causal ? Math.min(Math.max(i + nk - nq + 1, 0), nk) : nk;
      if (n === 0) {
        lse[hh * nq + i] = -Infinity;
        continue;
      }
      let m = -Infinity;
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let x = 0; x < d; x++) acc += q[qo + i * d + x] * k[ko + j * d + x];
        sc[j] = acc * scale;
        m = Math.max(m, sc[j]);
      }
      let l = 0;
      for (let j = 0; j < n; j++) l += Math.exp(sc[j] - m);
      const L = m + Math.log(l);
      lse[hh * nq + i] = L;
      let delta = 0;
      for (let j = 0; j < n; j++) {
        const p = Math.exp(sc[j] - L);
        let acc = 0;
        for (let x = 0; x < d; x++) {
          o[qo + i * d + x] += p * v[ko + j * d + x];
          acc += dO[qo + i * d + x] * v[ko + j * d + x];
        }
        dp[j] = acc;
        delta += p * acc;
      }
      for (let j = 0; j < n; j++) {
        const p = Math.exp(sc[j] - L);
        const ds = p * (dp[j] - delta) * scale;
        for (let x = 0; x < d; x++) {
          dv[ko + j * d + x] += p * dO[qo + i * d + x];
          dq[qo + i * d + x] += ds * k[ko + j * d + x];
          dk[ko + j * d + x] += ds * q[qo + i * d + x];
        }
      }
    }
  }
  return { o, lse, dq, dk, dv };
}

function makeInputs(s: Shape, seed: number) {
  const nqd = s.b * s.h * s.nq * s.d;
  const nkd = s.b * s.h * s.nk * s.d;
  const data = { q: randn(nqd, seed), k: randn(nkd, seed + 1), v: randn(nkd, seed + 2), dO: randn(nqd, seed + 3) };
  const t = {
    q: Tensor.from(data.q, [s.b, s.h, s.nq, s.d]),
    k: Tensor.from(data.k, [s.b, s.h, s.nk, s.d]),
    v: Tensor.from(data.v, [s.b, s.h, s.nk, s.d]),
    dO: Tensor.from(data.dO, [s.b, s.h, s.nq, s.d]),
  };
  return { data, t };
}

function runBoth(t: ReturnType<typeof makeInputs>['t'], options: { scale?: number; causal?: boolean }) {
  const fwd = attentionSync(t.q, t.k, t.v, options);
  const g = attentionBackwardSync(t.q, t.k, t.v, fwd.o, fwd.lse, t.dO, options);
  return {
    o: fwd.o.dataSync(),
    lse: fwd.lse.dataSync(),
    dq: g.dq.dataSync(),
    dk: g.dk.dataSync(),
    dv: g.dv.dataSync(),
  };
}

describe('attention against PyTorch (float64 autograd, torch 1.13)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-attention-'));
  beforeAll(() => {
    const script = path.join(__dirname, 'reference', 'attention_reference.py');
    const r = spawnSync('/usr/bin/python3', [script, dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`attention_reference.py failed: ${r.stderr || r.error}`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const read = (name: string, key: string, type: 'f32' | 'f64') => {
    const buf = fs.readFileSync(path.join(dir, `${name}.${key}.bin`));
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    return type === 'f32' ? new Float32Array(ab) : new Float64Array(ab);
  };

  test('every fixture: o, lse, dq, dk, dv within 1e-5 (max|a-b|/max|b|)', () => {
    const names: string[] = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8'));
    expect(names.length).toBeGreaterThanOrEqual(8);
    for (const name of names) {
      const meta = JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8'));
      const qShape = [meta.batch, meta.heads, meta.nq, meta.dim];
      const kShape = [meta.batch, meta.heads, meta.nk, meta.dim];
      const t = {
        q: Tensor.from(read(name, 'q', 'f32') as Float32Array, qShape),
        k: Tensor.from(read(name, 'k', 'f32') as Float32Array, kShape),
        v: Tensor.from(read(name, 'v', 'f32') as Float32Array, kShape),
        dO: Tensor.from(read(name, 'dO', 'f32') as Float32Array, qShape),
      };
      const got = runBoth(t, { scale: meta.scale, causal: meta.causal });
      for (const key of ['o', 'lse', 'dq', 'dk', 'dv'] as const) {
        const err = relErr(got[key], read(name, key, 'f64'));
        if (!(err <= TOL)) throw new Error(`${name}: ${key} relative error ${err}`);
      }
    }
  });
});

describe('attention against a float64 reference', () => {
  const cases: Array<[Shape, boolean]> = [
    [{ b: 1, h: 1, nq: 1, nk: 1, d: 64 }, false],
    [{ b: 2, h: 2, nq: 17, nk: 17, d: 32 }, true],
    [{ b: 1, h: 2, nq: 100, nk: 100, d: 80 }, false],
    [{ b: 1, h: 1, nq: 33, nk: 130, d: 128 }, true],
    [{ b: 1, h: 1, nq: 130, nk: 33, d: 64 }, true], // the first 97 queries see no key
    [{ b: 1, h: 1, nq: 257, nk: 70, d: 48 }, false],
  ];
  test.each(cases)('%o causal=%s', (s, causal) => {
    const { data, t } = makeInputs(s, s.nq * 7 + s.nk + s.d);
    const scale = 1 / Math.sqrt(s.d);
    const got = runBoth(t, { causal });
    const ref = reference(data.q, data.k, data.v, data.dO, s, scale, causal);
    for (const key of ['o', 'lse', 'dq', 'dk', 'dv'] as const) expect(relErr(got[key], ref[key])).toBeLessThanOrEqual(TOL);
  });

  test('the default scale is 1/sqrt(dim); an explicit scale is used as given', () => {
    const s = { b: 1, h: 1, nq: 9, nk: 11, d: 16 };
    const { data, t } = makeInputs(s, 5);
    const byDefault = attentionSync(t.q, t.k, t.v).o.dataSync();
    expect(relErr(byDefault, reference(data.q, data.k, data.v, data.dO, s, 0.25, false).o)).toBeLessThanOrEqual(TOL);
    const explicit = attentionSync(t.q, t.k, t.v, { scale: 1.7 }).o.dataSync();
    expect(relErr(explicit, reference(data.q, data.k, data.v, data.dO, s, 1.7, false).o)).toBeLessThanOrEqual(TOL);
  });
});

describe('attention backward: finite differences', () => {
  // L = sum(o * w) through the f32 kernel, central differences with eps = 1e-2; the gradient of
  // L with respect to o is w, so attentionBackward(..., dO = w) must match.
  test.each([false, true])('causal=%s: dq, dk, dv within 2e-3 (max|a-b|/max|b|)', (causal) => {
    const s = { b: 1, h: 2, nq: 4, nk: 6, d: 8 };
    const { data, t } = makeInputs(s, causal ? 91 : 92);
    const opts = { causal, scale: 0.45 };
    const w = data.dO;
    const loss = (q: Float32Array, k: Float32Array, v: Float32Array) => {
      const o = attentionSync(Tensor.from(q, t.q.shape), Tensor.from(k, t.k.shape), Tensor.from(v, t.v.shape), opts).o.dataSync();
      let l = 0;
      for (let i = 0; i < o.length; i++) l += o[i] * w[i];
      return l;
    };
    const fwd = attentionSync(t.q, t.k, t.v, opts);
    const g = attentionBackwardSync(t.q, t.k, t.v, fwd.o, fwd.lse, t.dO, opts);
    const grads = { q: g.dq.dataSync(), k: g.dk.dataSync(), v: g.dv.dataSync() };
    const eps = 1e-2;
    for (const which of ['q', 'k', 'v'] as const) {
      const fd = new Float64Array(data[which].length);
      for (let i = 0; i < fd.length; i++) {
        const x = { q: data.q.slice(), k: data.k.slice(), v: data.v.slice() };
        x[which][i] += eps;
        const lp = loss(x.q, x.k, x.v);
        x[which][i] -= 2 * eps;
        const lm = loss(x.q, x.k, x.v);
        fd[i] = (lp - lm) / (2 * eps);
      }
      expect(relErr(grads[which], fd)).toBeLessThanOrEqual(2e-3);
    }
  });
});

describe('attention async forms', () => {
  test('attention and attentionBackward resolve to what the sync forms return', async () => {
    const s = { b: 2, h: 3, nq: 70, nk: 90, d: 64 };
    const { t } = makeInputs(s, 3);
    const sync = runBoth(t, { causal: true });
    const fwd = await attention(t.q, t.k, t.v, { causal: true });
    expect(fwd.o.shape).toEqual([2, 3, 70, 64]);
    expect(fwd.lse.shape).toEqual([2, 3, 70]);
    const g = await attentionBackward(t.q, t.k, t.v, fwd.o, fwd.lse, t.dO, { causal: true });
    expect(g.dk.shape).toEqual([2, 3, 90, 64]);
    expect(Array.from(fwd.o.dataSync())).toEqual(Array.from(sync.o));
    expect(Array.from(fwd.lse.dataSync())).toEqual(Array.from(sync.lse));
    for (const key of ['dq', 'dk', 'dv'] as const) expect(relErr(g[key].dataSync(), sync[key])).toBeLessThanOrEqual(1e-6);
  });

  test('errors reject the promise with a code', async () => {
    const q = Tensor.zeros([1, 1, 4, 8]);
    const k = Tensor.zeros([1, 1, 5, 9]);
    await expect(attention(q, k, k)).rejects.toMatchObject({ code: 'ERR_DECOFLOW_SHAPE' });
    await expect(attentionBackward(q, q, q, q, Tensor.zeros([1, 1, 3]), q)).rejects.toMatchObject({
      code: 'ERR_DECOFLOW_SHAPE',
    });
  });
});

describe('attention errors', () => {
  const q = Tensor.zeros([1, 2, 4, 8]);
  const k = Tensor.zeros([1, 2, 5, 8]);
  const lse = Tensor.zeros([1, 2, 4]);
  const cases: Array<[string, () => unknown, string, RegExp]> = [
    ['k head dim', () => attentionSync(q, Tensor.zeros([1, 2, 5, 7]), k), 'ERR_DECOFLOW_SHAPE', /attention: k: expected \[1, 2, nk, 8\]/],
    ['k heads', () => attentionSync(q, Tensor.zeros([1, 3, 5, 8]), k), 'ERR_DECOFLOW_SHAPE', /k: expected/],
    ['v shape', () => attentionSync(q, k, Tensor.zeros([1, 2, 6, 8])), 'ERR_DECOFLOW_SHAPE', /v: expected shape \[1, 2, 5, 8\]/],
    ['rank', () => attentionSync(Tensor.zeros([2, 4, 8]), k, k), 'ERR_DECOFLOW_SHAPE', /q: expected rank 4/],
    ['dim > 256', () => attentionSync(Tensor.zeros([1, 1, 2, 257]), Tensor.zeros([1, 1, 2, 257]), Tensor.zeros([1, 1, 2, 257])), 'ERR_DECOFLOW_SHAPE', /at most 256/],
    ['dtype', () => attentionSync(q.cast('f16'), k, k), 'ERR_DECOFLOW_DTYPE', /q: expected dtype f32, got f16/],
    ['NaN scale', () => attentionSync(q, k, k, { scale: NaN }), 'ERR_DECOFLOW_NON_FINITE', /options.scale: expected a finite number/],
    ['infinite scale', () => attentionSync(q, k, k, { scale: Infinity }), 'ERR_DECOFLOW_NON_FINITE', /options.scale/],
    ['scale overflowing f32', () => attentionSync(q, k, k, { scale: 1e300 }), 'ERR_DECOFLOW_NON_FINITE', /options.scale/],
    ['scale not a number', () => attentionSync(q, k, k, { scale: '2' as unknown as number }), 'ERR_DECOFLOW_ARG_TYPE', /options.scale: expected a number/],
    ['causal not a boolean', () => attentionSync(q, k, k, { causal: 1 as unknown as boolean }), 'ERR_DECOFLOW_ARG_TYPE', /options.causal/],
    ['not a tensor', () => attentionSync(q, {} as Tensor, k), 'ERR_DECOFLOW_ARG_TYPE', /attentionSync: k: expected a Tensor/],
    ['backward lse shape', () => attentionBackwardSync(q, k, k, q, Tensor.zeros([1, 2, 5]), q), 'ERR_DECOFLOW_SHAPE', /lse: expected shape \[1, 2, 4\]/],
    ['backward dO shape', () => attentionBackwardSync(q, k, k, q, lse, k), 'ERR_DECOFLOW_SHAPE', /dO: expected shape \[1, 2, 4, 8\]/],
    ['backward o dtype', () => attentionBackwardSync(q, k, k, q.cast('bf16'), lse, q), 'ERR_DECOFLOW_DTYPE', /o: expected dtype f32/],
    ['backward NaN scale', () => attentionBackwardSync(q, k, k, q, lse, q, { scale: NaN }), 'ERR_DECOFLOW_NON_FINITE', /scale/],
  ];
  test.each(cases)('%s', (_name, fn, code, message) => {
    let caught: unknown;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({ code });
    expect((caught as Error).message).toMatch(message);
  });

  test('a disposed tensor', () => {
    const d = Tensor.zeros([1, 2, 4, 8]);
    d.dispose();
    expect(() => attentionSync(d, k, k)).toThrow(expect.objectContaining({ code: 'ERR_DECOFLOW_DISPOSED' }));
  });
});

describe('attention memory', () => {
  test('N = 8192: forward and backward allocate O(N D), never N x N', async () => {
    const s = { b: 1, h: 1, nq: 8192, nk: 8192, d: 64 };
    const { t } = makeInputs(s, 8192);
    const nByN = s.nq * s.nk * 4; // one f32 score matrix: 256 MiB
    const rowBytes = s.nq * s.d * 4; // one [N, D] f32 tensor: 2 MiB
    const before = memory().cpu.bytes;
    resetPeakMemory();
    const fwd = attentionSync(t.q, t.k, t.v, { causal: true });
    const g = await attentionBackward(t.q, t.k, t.v, fwd.o, fwd.lse, t.dO, { causal: true });
    const peak = memory().cpu.peakBytes - before;
    // Outputs: o, lse, dq, dk, dv = 4 [N, D] + [N]. Besides them: per-thread tile workspaces (well
    // under 1 MiB), two floats per row (LSE in base 2, rowsum(dO * O)) and, with fewer than 8
    // heads, partial dQ buffers of [N, D] for up to 7 more sets of key tiles (here 1 head: 7).
    const outputs = 4 * rowBytes + s.nq * 4;
    const allowed = outputs + 7 * rowBytes + s.nq * 8 + (1 << 20);
    expect(peak).toBeGreaterThanOrEqual(outputs);
    expect(peak).toBeLessThanOrEqual(allowed);
    expect(peak).toBeLessThan(nByN / 8);
    for (const x of [fwd.o, fwd.lse, g.dq, g.dk, g.dv, t.q, t.k, t.v, t.dO]) x.dispose();
  });
});
