import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  evalFeatures,
  evaluate,
  evaluateSync,
  frechetDistance,
  loadImageSet,
  saveGrid,
  saveImages,
  setThreads,
  getThreads,
  symmetricEigen,
  Tensor,
  writeSafetensors,
} from '../lib';
import type { EvalResult } from '../lib';
import { caught, caughtAsync, randomArray, relError } from './helpers';

const PYTHON = '/usr/bin/python3'; // Debian's python3-torch
const FASHION = fs.existsSync('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');

// xorshift32 uniforms in [0, 1), independent of decoflow's generator
function uniforms(seed: number): () => number {
  let s = (seed * 2654435761) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** A random symmetric positive semi-definite matrix A A^T / k of rank min(n, k). */
function randomCov(n: number, k: number, seed: number): Float32Array {
  const a = randomArray(n * k, seed);
  const c = new Float32Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += a[i * k + q] * a[j * k + q];
      c[i * n + j] = c[j * n + i] = s / k;
    }
  return c;
}

// Distortions of a set of images [N, C, H, W] (Karras et al. and Heusel et al. test their
// metrics the same way): a [1 2 1] / 4 blur applied `k` times, Gaussian noise, and swaps of a
// fraction of the pixel positions of every image.
function blur(t: Tensor, k: number): Tensor {
  const [n, c, h, w] = t.shape;
  let d = Float32Array.from(t.dataSync() as Float32Array);
  const clamp = (v: number, hi: number) => Math.min(hi - 1, Math.max(0, v));
  for (let it = 0; it < k; it++) {
    const o = new Float32Array(d.length);
    for (let p = 0; p < n * c; p++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const at = (yy: number, xx: number) => d[p * h * w + clamp(yy, h) * w + clamp(xx, w)];
          o[p * h * w + y * w + x] = (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1) + 2 * at(y, x - 1) + 4 * at(y, x) + 2 * at(y, x + 1) + at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1)) / 16;
        }
    d = o;
  }
  return Tensor.from(d, t.shape);
}

function noise(t: Tensor, sigma: number): Tensor {
  const r = uniforms(7);
  const d = Float32Array.from(t.dataSync() as Float32Array);
  for (let i = 0; i < d.length; i++) d[i] += sigma * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return Tensor.from(d, t.shape);
}

function shuffle(t: Tensor, fraction: number): Tensor {
  const [n, c, h, w] = t.shape;
  const r = uniforms(9);
  const d = Float32Array.from(t.dataSync() as Float32Array);
  for (let i = 0; i < n; i++)
    for (let q = 0; q < fraction * h * w; q++) {
      const a = Math.floor(r() * h * w);
      const b = Math.floor(r() * h * w);
      for (let ch = 0; ch < c; ch++) {
        const o = (i * c + ch) * h * w;
        [d[o + a], d[o + b]] = [d[o + b], d[o + a]];
      }
    }
  return Tensor.from(d, t.shape);
}

const fast = { swdProjections: 128 };

describe('against the PyTorch float64 reference (test/reference/eval_reference.py)', () => {
  let dir = '';
  let ref: {
    eigen: Record<string, number[]>;
    frechet: Record<string, number>;
    features: Record<string, Record<string, number[]>>;
    pr: Record<string, { precision: number; recall: number }>;
  };
  const eigenCases = [
    { name: 'full', n: 40, k: 60 },
    { name: 'rank-deficient', n: 64, k: 10 },
    { name: 'large', n: 300, k: 400 },
  ];
  const frechetCases = [
    { name: 'full', d: 24, k: 50 },
    { name: 'singular', d: 48, k: 12 },
    { name: 'large', d: 256, k: 300 },
  ];
  const featureCases = [
    { name: 'grey32', shape: [60, 1, 32, 32] },
    { name: 'rgb64x32', shape: [50, 3, 64, 32] },
  ];
  const write = (name: string, data: Float32Array) => fs.writeFileSync(path.join(dir, name), Buffer.from(data.buffer, data.byteOffset, data.byteLength));

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-eval-'));
    eigenCases.forEach((c, i) => write(`${c.name}.m.bin`, randomCov(c.n, c.k, 10 + i)));
    frechetCases.forEach((c, i) => {
      write(`${c.name}.ma.bin`, randomArray(c.d, 20 + i));
      write(`${c.name}.ca.bin`, randomCov(c.d, c.k, 30 + i));
      write(`${c.name}.mb.bin`, randomArray(c.d, 40 + i));
      write(`${c.name}.cb.bin`, randomCov(c.d, c.k + 3, 50 + i));
    });
    featureCases.forEach((c, i) => write(`${c.name}.x.bin`, randomArray(c.shape.reduce((a, b) => a * b, 1), 60 + i)));
    const pr = [
      { name: 'pix8', a: 'grey32', b: 'grey32b', k: 3, feature: 'pix8' },
      { name: 'bands', a: 'grey32', b: 'grey32b', k: 5, feature: 'bands' },
    ];
    // a second grey set that overlaps the first partly: half its images shrunk a little, half new
    // images with a larger spread
    const g = randomArray(60 * 1024, 60);
    const fresh = randomArray(60 * 1024, 61);
    const g2 = g.map((v, i) => (i < 30 * 1024 ? 0.9 * v : 1.5 * fresh[i]));
    write('grey32b.x.bin', g2);
    fs.writeFileSync(
      path.join(dir, 'manifest.json'),
      JSON.stringify({ eigen: eigenCases, frechet: frechetCases, features: [...featureCases, { name: 'grey32b', shape: [60, 1, 32, 32] }], pr }),
    );
    const r = spawnSync(PYTHON, [path.join(__dirname, 'reference', 'eval_reference.py'), dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`eval_reference.py failed (needs python3-torch): ${r.stderr || r.error}`);
    ref = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const read = (name: string, shape: number[]) => {
    const buf = fs.readFileSync(path.join(dir, name));
    return Tensor.from(new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), shape);
  };

  test('eigenvalues equal torch.linalg.eigvalsh to 1e-12 of the largest; eigenvectors are orthonormal and A v = lambda v', () => {
    for (const c of eigenCases) {
      const m = read(`${c.name}.m.bin`, [c.n, c.n]);
      const { values, vectors } = symmetricEigen(m);
      const expected = ref.eigen[c.name];
      const scale = Math.max(...expected.map(Math.abs));
      for (let i = 0; i < c.n; i++) expect(Math.abs(values[i] - expected[i])).toBeLessThan(1e-12 * scale * c.n);
      const a = m.dataSync() as Float32Array;
      let worstResidual = 0;
      let worstOrtho = 0;
      for (let i = 0; i < c.n; i++) {
        for (let r = 0; r < c.n; r++) {
          let av = 0;
          for (let q = 0; q < c.n; q++) av += a[r * c.n + q] * vectors[i * c.n + q];
          worstResidual = Math.max(worstResidual, Math.abs(av - values[i] * vectors[i * c.n + r]));
        }
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let q = 0; q < c.n; q++) dot += vectors[i * c.n + q] * vectors[j * c.n + q];
          worstOrtho = Math.max(worstOrtho, Math.abs(dot - (i === j ? 1 : 0)));
        }
      }
      expect(worstResidual).toBeLessThan(1e-11 * scale * c.n);
      expect(worstOrtho).toBeLessThan(1e-12 * c.n);
      m.dispose();
    }
  });

  test('the Frechet distance equals the float64 reference to 1e-9 relative (full rank, singular, 256-d)', () => {
    for (const c of frechetCases) {
      const t = ['ma', 'ca', 'mb', 'cb'].map((s) => read(`${c.name}.${s}.bin`, s[0] === 'm' ? [c.d] : [c.d, c.d]));
      const fd = frechetDistance(t[0], t[1], t[2], t[3]);
      // a singular covariance makes sqrt ill-conditioned at its zero eigenvalues: looser there
      const tol = c.name === 'singular' ? 1e-6 : 1e-9;
      expect(Math.abs(fd - ref.frechet[c.name]) / ref.frechet[c.name]).toBeLessThan(tol);
      t.forEach((x) => x.dispose());
    }
  });

  test('features (pix8, pix16, bands) equal the reference to 1e-5', () => {
    for (const c of [...featureCases, { name: 'grey32b', shape: [60, 1, 32, 32] }]) {
      const x = read(`${c.name}.x.bin`, c.shape);
      for (const kind of ['pix8', 'pix16', 'bands'] as const) {
        const f = evalFeatures(x, kind);
        const expected = ref.features[c.name][kind];
        expect(f.shape[0]).toBe(c.shape[0]);
        expect(f.size).toBe(expected.length);
        expect(relError(f.dataSync() as Float32Array, expected)).toBeLessThan(1e-5);
        f.dispose();
      }
      x.dispose();
    }
  });

  test('precision and recall equal the reference (k-NN radii, Kynkaanniemi et al.)', () => {
    const a = read('grey32.x.bin', [60, 1, 32, 32]);
    const b = read('grey32b.x.bin', [60, 1, 32, 32]);
    for (const [name, feature, k] of [
      ['pix8', 'pix8', 3],
      ['bands', 'bands', 5],
    ] as const) {
      const r = evaluateSync(b, a, { swd: false, frechet: [], prFeature: feature, prK: k });
      expect(r.precision).toBeCloseTo(ref.pr[name].precision, 10);
      expect(r.recall).toBeCloseTo(ref.pr[name].recall, 10);
      // a non-trivial case: neither everything nor nothing is covered
      expect(ref.pr[name].precision).toBeGreaterThan(0);
      expect(ref.pr[name].precision).toBeLessThan(1);
    }
    a.dispose();
    b.dispose();
  });
});

describe('closed forms', () => {
  test('diagonal covariances: FD = |dm|^2 + sum (sqrt a_i - sqrt b_i)^2', () => {
    const d = 30;
    const a = randomArray(d, 1).map((v) => v * v + 0.01);
    const b = randomArray(d, 2).map((v) => v * v);
    b[3] = 0; // a zero variance is allowed
    const ma = randomArray(d, 3);
    const mb = randomArray(d, 4);
    const diag = (v: Float32Array) => {
      const m = new Float32Array(d * d);
      v.forEach((x, i) => (m[i * d + i] = x));
      return Tensor.from(m, [d, d]);
    };
    let expected = 0;
    for (let i = 0; i < d; i++) expected += (ma[i] - mb[i]) ** 2 + (Math.sqrt(a[i]) - Math.sqrt(b[i])) ** 2;
    const fd = frechetDistance(Tensor.from(ma, [d]), diag(a), Tensor.from(mb, [d]), diag(b));
    expect(Math.abs(fd - expected) / expected).toBeLessThan(1e-10);
    // and with itself: zero
    expect(Math.abs(frechetDistance(Tensor.from(ma, [d]), diag(a), Tensor.from(ma, [d]), diag(a)))).toBeLessThan(1e-12);
  });

  test('identical sets: SWD 0, FD ~0, precision and recall 1', () => {
    const x = Tensor.from(randomArray(80 * 3 * 16 * 16, 5), [80, 3, 16, 16]);
    const r = evaluateSync(x, x, fast);
    expect(r.swd!.mean).toBe(0);
    // 80 images of 768 pixel features: singular covariances, whose rounding-level eigenvalues
    // contribute sqrt(rounding) each; the traces are ~60, so this is ~1e-6 of them
    for (const v of Object.values(r.frechet)) expect(Math.abs(v!)).toBeLessThan(5e-4);
    expect(r.precision).toBe(1);
    expect(r.recall).toBe(1);
  });
});

describe('on real data', () => {
  const datasets = FASHION ? ['fashion-mnist', 'shapes'] : ['shapes'];
  const N = 300;

  test.each(datasets)('%s: two disjoint halves are close; blur, noise and pixel shuffles move the distances up monotonically; blur lowers the finest level of detail, noise raises it', async (name) => {
    const real = await loadImageSet(name, { limit: N });
    const other = await loadImageSet(name, { offset: N, limit: N });
    // the 768-d 16x16 RGB Gaussian is slow to fit on a small machine: pix8 and bands for shapes
    const opts = name === 'shapes' ? { ...fast, frechet: ['pix8' as const, 'bands' as const], prFeature: 'pix8' as const } : fast;
    const halves = await evaluate(other, real, opts);
    const series: Record<string, EvalResult[]> = { blur: [], noise: [], shuffle: [] };
    for (const k of [1, 2, 4]) series.blur.push(await evaluate(blur(other, k), real, opts));
    for (const s of [0.1, 0.2, 0.4]) series.noise.push(await evaluate(noise(other, s), real, opts));
    for (const f of [0.05, 0.15, 0.4]) series.shuffle.push(await evaluate(shuffle(other, f), real, opts));
    const monotone = (values: number[]) => values.every((v, i) => i === 0 || v > values[i - 1]);
    for (const [kind, rs] of Object.entries(series)) {
      const swd = [halves.swd!.mean, ...rs.map((r) => r.swd!.mean)];
      const bands = [halves.frechet.bands!, ...rs.map((r) => r.frechet.bands!)];
      expect({ kind, swd, ok: monotone(swd) }).toEqual({ kind, swd, ok: true });
      expect({ kind, bands, ok: monotone(bands) }).toEqual({ kind, bands, ok: true });
      // "close to zero": the halves are far closer than the strongest distortion
      expect(halves.swd!.mean).toBeLessThan(0.5 * swd[swd.length - 1]);
      expect(halves.frechet.bands!).toBeLessThan(0.1 * bands[bands.length - 1]);
    }
    // noise and shuffles also move the 16x16 Gaussian; heavy noise leaves the real manifold
    // (8x8 averages hardly see a 5% pixel shuffle, so the coarse check is on pix16 only)
    for (const kind of name === 'shapes' ? [] : ['noise', 'shuffle']) {
      const pix16 = [halves.frechet.pix16!, ...series[kind].map((r) => r.frechet.pix16!)];
      expect({ kind, pix16, ok: monotone(pix16) }).toEqual({ kind, pix16, ok: true });
    }
    // per detail level: blur takes fine detail away (generated RMS below the real one), noise adds it
    const finest = (r: EvalResult) => r.bandLevels!.rmsGenerated[0] / r.bandLevels!.rmsReal[0];
    expect(finest(series.blur[2])).toBeLessThan(0.8);
    expect(finest(series.noise[2])).toBeGreaterThan(1.2);
    expect(Math.abs(finest(halves) - 1)).toBeLessThan(0.1);
    if (name !== 'shapes') expect(series.noise[2].precision!).toBeLessThan(halves.precision! - 0.3); // pix8 averages noise away
    expect(halves.precision!).toBeGreaterThan(0.6);
    expect(halves.recall!).toBeGreaterThan(0.6);
    real.dispose();
    other.dispose();
  }, 300000); // slow when the machine is shared: 2 x 10 evaluations of 300 vs 300 images
});

describe('symmetry and determinism', () => {
  const a = Tensor.from(randomArray(150 * 1 * 32 * 32, 11).map((v) => Math.tanh(2 * v)), [150, 1, 32, 32]);
  const b = Tensor.from(randomArray(120 * 1 * 32 * 32, 12), [120, 1, 32, 32]);
  const opts = { ...fast, frechet: ['pix8' as const, 'bands' as const] };

  test('bandLevels: each level is the Frechet distance of its block of the bands features, and its mean cell RMS', () => {
    const r = evaluateSync(a, b, opts);
    const levels = r.bandLevels!;
    expect(levels.resolutions).toEqual([32, 16]);  // detail levels of a 32 px image down to 8 px
    const fa = evalFeatures(a, 'bands'), fb = evalFeatures(b, 'bands');
    const d = fa.shape[1], k = d / 2;
    const gaussianOfBlock = (f: Tensor, lo: number) => {
      const n = f.shape[0], x = Array.from(f.dataSync() as ArrayLike<number>);
      const mean = new Float64Array(k), cov = new Float64Array(k * k);
      for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) mean[j] += x[i * d + lo + j] / n;
      for (let i = 0; i < n; i++)
        for (let p = 0; p < k; p++) for (let q = 0; q < k; q++) cov[p * k + q] += ((x[i * d + lo + p] - mean[p]) * (x[i * d + lo + q] - mean[q])) / (n - 1);
      return { mean, cov };
    };
    levels.resolutions.forEach((_, l) => {
      const ga = gaussianOfBlock(fa, l * k), gb = gaussianOfBlock(fb, l * k);
      const fd = frechetDistance(Tensor.from(Float32Array.from(ga.mean), [k]), Tensor.from(Float32Array.from(ga.cov), [k, k]),
        Tensor.from(Float32Array.from(gb.mean), [k]), Tensor.from(Float32Array.from(gb.cov), [k, k]));
      expect(Math.abs(levels.frechet[l] - fd) / fd).toBeLessThan(1e-5);
      const avg = (m: Float64Array) => m.reduce((x, y) => x + y, 0) / k;
      expect(levels.rmsGenerated[l]).toBeCloseTo(avg(ga.mean), 6);
      expect(levels.rmsReal[l]).toBeCloseTo(avg(gb.mean), 6);
    });
    // without the bands distance there is no split
    expect(evaluateSync(a, b, { ...fast, frechet: ['pix8'] }).bandLevels).toBeUndefined();
    fa.dispose();
    fb.dispose();
  });

  test('SWD is exactly symmetric; FD symmetric to 1e-9 (more samples than dimensions); precision and recall swap', () => {
    const ab = evaluateSync(a, b, opts);
    const ba = evaluateSync(b, a, opts);
    expect(ba.swd).toEqual(ab.swd);
    for (const k of ['pix8', 'bands'] as const) expect(Math.abs(ab.frechet[k]! - ba.frechet[k]!) / ab.frechet[k]!).toBeLessThan(1e-9);
    expect(ba.precision).toBe(ab.recall);
    expect(ba.recall).toBe(ab.precision);
  });

  test('the same seed gives the same numbers, sync or async, on 1 or 2 threads; another seed a different SWD', async () => {
    const r1 = evaluateSync(a, b, { ...opts, seed: 3 });
    const r2 = await evaluate(a, b, { ...opts, seed: 3 });
    expect(r2).toEqual(r1);
    const threads = getThreads();
    setThreads(1);
    try {
      const r3 = evaluateSync(a, b, { ...opts, seed: 3 });
      expect(relError(r3.swd!.levels, r1.swd!.levels)).toBeLessThan(1e-6);
      expect(Math.abs(r3.frechet.pix8! - r1.frechet.pix8!) / r1.frechet.pix8!).toBeLessThan(1e-5);
    } finally {
      setThreads(threads);
    }
    const other = evaluateSync(a, b, { ...opts, seed: 4 });
    expect(other.swd!.mean).not.toBe(r1.swd!.mean);
    expect(Math.abs(other.swd!.mean - r1.swd!.mean) / r1.swd!.mean).toBeLessThan(0.2);
  });

  test('progress is reported once per part', async () => {
    const seen: number[] = [];
    await evaluate(a, b, { ...opts, onProgress: (p) => seen.push(p.step) });
    expect(seen).toEqual([1, 2, 3, 4]);
  });
});

describe('bad input is an error with a code, never a crash', () => {
  const x = Tensor.from(randomArray(20 * 1 * 16 * 16, 1), [20, 1, 16, 16]);

  test('mismatched sets, NaN, bad options', async () => {
    const rgb = Tensor.from(randomArray(20 * 3 * 16 * 16, 2), [20, 3, 16, 16]);
    let e = caught(() => evaluateSync(x, rgb));
    expect(e.code).toBe('ERR_DECOFLOW_SHAPE');
    expect(e.message).toMatch(/same channels and size/);
    const nan = randomArray(20 * 256, 3);
    nan[17] = NaN;
    e = caught(() => evaluateSync(Tensor.from(nan, [20, 1, 16, 16]), x));
    expect(e.code).toBe('ERR_DECOFLOW_NON_FINITE');
    expect(e.message).toMatch(/generated/);
    e = caught(() => evaluateSync(x, x, { frechet: ['vgg' as 'pix8'] }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(e.message).toMatch(/frechet\[0\].*'pix8', 'pix16' or 'bands'/);
    e = caught(() => evaluateSync(x, x, { swdPatch: 0 }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    e = caught(() => evaluateSync(x, x, { swdLevels: 9 }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(e.message).toMatch(/swdLevels/);
    e = caught(() => evaluateSync(x, x, { prK: 20 }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    e = caught(() => evaluateSync(x, x, { seed: -1 }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    const small = Tensor.from(randomArray(20 * 36, 4), [20, 1, 6, 6]);
    e = caught(() => evaluateSync(small, small, { frechet: [], precisionRecall: false }));
    expect(e.code).toBe('ERR_DECOFLOW_SHAPE');
    e = caught(() => evalFeatures(small, 'pix16'));
    expect(e.code).toBe('ERR_DECOFLOW_SHAPE');
    const one = Tensor.from(randomArray(256, 5), [1, 1, 16, 16]);
    e = caught(() => evaluateSync(one, x, { swd: false, precisionRecall: false }));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    const disposed = Tensor.from(randomArray(20 * 256, 6), [20, 1, 16, 16]);
    disposed.dispose();
    e = await caughtAsync(() => evaluate(disposed, x));
    expect(e.code).toBe('ERR_DECOFLOW_DISPOSED');
    e = caught(() => frechetDistance(Tensor.from(new Float32Array(3), [3]), Tensor.zeros([3, 2]), Tensor.from(new Float32Array(3), [3]), Tensor.zeros([3, 3])));
    expect(e.code).toBe('ERR_DECOFLOW_SHAPE');
  });
});

describe('loadImageSet', () => {
  let dir = '';
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-evalsets-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // values on the 8-bit grid, so PNG round trips are exact
  const images = (n: number, c: number, s: number, seed: number) =>
    Tensor.from(randomArray(n * c * s * s, seed).map((v) => Math.round((v + 1) * 127.5) / 127.5 - 1), [n, c, s, s]);

  test('a folder of PNGs (as decoflow sample --count writes it), a grid, .npy and .safetensors give the same tensor', async () => {
    const x = images(10, 3, 16, 1);
    const want = x.dataSync() as Float32Array;
    await saveImages(path.join(dir, 'folder'), x);
    const folder = await loadImageSet(path.join(dir, 'folder'));
    expect(folder.shape).toEqual([10, 3, 16, 16]);
    expect(relError(folder.dataSync() as Float32Array, want)).toBeLessThan(1e-6);
    await saveGrid(path.join(dir, 'grid.png'), x, { columns: 4, scale: 3 });
    const grid = await loadImageSet(path.join(dir, 'grid.png'), { tile: 48, imageSize: 16, limit: 10 });
    expect(grid.shape).toEqual([10, 3, 16, 16]);
    expect(relError(grid.dataSync() as Float32Array, want)).toBeLessThan(1e-6);
    writeSafetensors(path.join(dir, 'x.safetensors'), { images: x });
    const st = await loadImageSet(path.join(dir, 'x.safetensors'), { offset: 2, limit: 3 });
    expect(st.shape).toEqual([3, 3, 16, 16]);
    expect(relError(st.dataSync() as Float32Array, want.subarray(2 * 768, 5 * 768))).toBe(0);
    // .npy: uint8 [N, H, W] (grey) and float32 [N, C, H, W]
    const header = (descr: string, shape: string) => {
      let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape}), }`;
      while ((10 + h.length + 1) % 64 !== 0) h += ' ';
      h += '\n';
      const b = Buffer.alloc(10);
      b.write('\x93NUMPY', 0, 'latin1');
      b[6] = 1;
      b[7] = 0;
      b.writeUInt16LE(h.length, 8);
      return Buffer.concat([b, Buffer.from(h, 'latin1')]);
    };
    const u8 = new Uint8Array(4 * 8 * 8).map((_, i) => (i * 37) % 256);
    fs.writeFileSync(path.join(dir, 'g.npy'), Buffer.concat([header('|u1', '4, 8, 8'), Buffer.from(u8)]));
    const g = await loadImageSet(path.join(dir, 'g.npy'));
    expect(g.shape).toEqual([4, 1, 8, 8]);
    expect((g.dataSync() as Float32Array)[5]).toBeCloseTo(u8[5] / 127.5 - 1, 6);
    fs.writeFileSync(path.join(dir, 'f.npy'), Buffer.concat([header('<f4', '10, 3, 16, 16'), Buffer.from(want.buffer, want.byteOffset, want.byteLength)]));
    const f = await loadImageSet(path.join(dir, 'f.npy'));
    expect(relError(f.dataSync() as Float32Array, want)).toBe(0);
  });

  test('bad sources are errors with codes', async () => {
    let e = await caughtAsync(() => loadImageSet(path.join(dir, 'nothing.npy')));
    expect(e.code).toBeDefined();
    fs.writeFileSync(path.join(dir, 'bad.npy'), 'not numpy at all');
    e = await caughtAsync(() => loadImageSet(path.join(dir, 'bad.npy')));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
    e = await caughtAsync(() => loadImageSet(path.join(dir, 'grid.png')));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(e.message).toMatch(/tile/);
    e = await caughtAsync(() => loadImageSet('imagenet'));
    expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
    fs.mkdirSync(path.join(dir, 'empty'), { recursive: true });
    e = await caughtAsync(() => loadImageSet(path.join(dir, 'empty')));
    expect(e.code).toBe('ERR_DECOFLOW_IO');
  });
});

describe('decoflow eval and decoflow sample --count from the command line', () => {
  let dir = '';
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-evalcli-'))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function run(args: string[]): Promise<{ code: number; out: string }> {
    const { main } = await import('../lib/cli');
    let out = '';
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      return { code: await main(args), out };
    } finally {
      write.mockRestore();
      err.mockRestore();
    }
  }

  test('a folder of PNGs of the held-out shapes against the same images: near 0; table and JSON', async () => {
    const x = await loadImageSet('shapes', { limit: 40 });
    await saveImages(path.join(dir, 'shapes'), x);
    const json = path.join(dir, 'report.json');
    const r = await run(['eval', '--generated', path.join(dir, 'shapes'), '--real', 'shapes', '--real-count', '40', '--swd-projections', '64', '--frechet', 'pix8,bands', '--pr-feature', 'pix8', '--json', json]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/SWD mean/);
    const report = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(report.generated).toBe(40);
    expect(report.real).toBe(40);
    expect(report.imageShape).toEqual([3, 32, 32]);
    expect(report.swd.mean).toBeLessThan(8); // only the 8-bit rounding of the PNGs differs (disjoint halves: ~25)
    expect(report.frechet.pix8).toBeLessThan(1e-3);
    expect(report.precision).toBe(1);
    expect((await run(['eval', '--real', 'shapes'])).code).toBe(2); // --generated missing
    expect((await run(['eval', '--generated', dir, '--frechet', 'inception'])).code).toBe(2);
    x.dispose();
  });

  test('sample --count writes N individual grey PNGs for a 1-channel model, in batches', async () => {
    const { Model } = await import('../lib');
    const model = Model.create(
      { stages: 2, channels: 1, height: 16, width: 16, patchSizes: [2, 4], hidden: 32, depth: 1, heads: 2, numClasses: 3, stageEmbedding: true },
      { maxBatch: 8, seed: 1 },
    );
    const ckpt = path.join(dir, 'tiny.safetensors');
    model.save(ckpt);
    model.dispose();
    const out = path.join(dir, 'many');
    const r = await run(['sample', '--checkpoint', ckpt, '--count', '300', '--batch', '128', '--steps-per-stage', '1,1', '--out', out]);
    expect(r.code).toBe(0);
    const files = fs.readdirSync(out).filter((f) => f.endsWith('.png')).sort();
    expect(files.length).toBe(300);
    expect(files[299]).toBe('sample-00299.png');
    const back = await loadImageSet(out);
    expect(back.shape).toEqual([300, 1, 16, 16]);
    back.dispose();
  }, 60000);
});
