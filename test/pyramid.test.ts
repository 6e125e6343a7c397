import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getThreads, pyramid, setThreads, Tensor } from '../lib';
import type { PyramidKind } from '../lib';
import { caught, caughtAsync, randomArray, relError } from './helpers';

const PYTHON = '/usr/bin/python3'; // Debian's python3-torch
const kinds: PyramidKind[] = ['laplacian', 'haar', 'consistent'];
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function image(shape: number[], seed: number): Tensor {
  return Tensor.from(randomArray(numel(shape), seed), shape);
}

function readF32(file: string): Float32Array {
  const buf = fs.readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function energy(data: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < data.length; i++) e += data[i] * data[i];
  return e;
}

describe('against the PyTorch reference (test/reference/pyramid_reference.py)', () => {
  // Square and not, one plane and many, stages 1 to 5.
  const cases: Array<{ name: string; shape: number[]; stages: number }> = [
    { name: 'square', shape: [2, 3, 32, 32], stages: 3 },
    { name: 'wide', shape: [1, 2, 16, 48], stages: 4 },
    { name: 'tall', shape: [3, 1, 64, 8], stages: 2 },
    { name: 'deep', shape: [1, 1, 64, 96], stages: 5 },
    { name: 'one', shape: [4, 2, 8, 6], stages: 1 },
    { name: 'tiny', shape: [1, 1, 2, 2], stages: 2 },
  ];
  let dir = '';

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-pyramid-'));
    cases.forEach((c, i) => {
      const x = randomArray(numel(c.shape), 100 + i);
      fs.writeFileSync(path.join(dir, `${c.name}.x.bin`), Buffer.from(x.buffer));
    });
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ cases }));
    const script = path.join(__dirname, 'reference', 'pyramid_reference.py');
    const r = spawnSync(PYTHON, [script, dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`pyramid_reference.py failed (needs python3-torch): ${r.stderr || r.error}`);
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test.each(kinds)('%s stages equal the reference to 1e-6, previews too', (kind) => {
    for (const c of cases) {
      const x = Tensor.from(readF32(path.join(dir, `${c.name}.x.bin`)), c.shape);
      const levels = pyramid.decomposeSync(x, { stages: c.stages, kind });
      expect(levels.length).toBe(c.stages);
      levels.forEach((level, s) => {
        const f = 2 ** (c.stages - 1 - s);
        expect(level.shape).toEqual([c.shape[0], c.shape[1], c.shape[2] / f, c.shape[3] / f]);
        const ref = readF32(path.join(dir, `${c.name}.${kind}.${s}.bin`));
        const err = relError(level.dataSync(), ref);
        if (!(err <= 1e-6)) throw new Error(`${c.name} stage ${s}: relative error ${err}`);
      });
      for (let k = 1; k <= c.stages; k++) {
        const p = pyramid.previewSync(levels, k, { kind });
        const err = relError(p.dataSync(), readF32(path.join(dir, `${c.name}.${kind}.preview${k}.bin`)));
        if (!(err <= 1e-6)) throw new Error(`${c.name} preview ${k}: relative error ${err}`);
        p.dispose();
      }
      for (const t of [x, ...levels]) t.dispose();
    }
  });
});

describe('recompose(decompose(x)) == x', () => {
  // B*C from 1 (rows of one plane split over the threads) to far more than the threads.
  const shapes = [
    [1, 1, 16, 16],
    [1, 1, 128, 32],
    [2, 3, 32, 48],
    [64, 3, 16, 16],
    [5, 7, 48, 16],
    [1, 1, 512, 64],
  ];
  const threadCounts = [getThreads(), 1, 3];
  afterAll(() => setThreads(0));

  test.each(kinds)('%s, stages 1 to 5, max relative error <= 1e-6 on 1 to 3 threads', (kind) => {
    for (const threads of threadCounts) {
      setThreads(threads);
      shapes.forEach((shape, i) => {
        const x = image(shape, 7 + i);
        const data = x.dataSync();
        for (let stages = 1; stages <= 5; stages++) {
          if (shape[2] % 2 ** (stages - 1) || shape[3] % 2 ** (stages - 1)) continue;
          const levels = pyramid.decomposeSync(x, { stages, kind });
          const back = pyramid.recomposeSync(levels, { kind });
          expect(back.shape).toEqual(shape);
          const err = relError(back.dataSync(), data);
          if (!(err <= 1e-6)) throw new Error(`${kind} ${shape} stages ${stages} threads ${threads}: ${err}`);
          for (const t of [back, ...levels]) t.dispose();
        }
        x.dispose();
      });
    }
  });

  test('Haar is orthonormal: the stages keep the energy of x and inner products', () => {
    const x = image([3, 2, 64, 32], 11);
    const y = image([3, 2, 64, 32], 12);
    for (let stages = 1; stages <= 5; stages++) {
      const lx = pyramid.decomposeSync(x, { stages, kind: 'haar' });
      const ex = energy(x.dataSync());
      const el = lx.reduce((sum, l) => sum + energy(l.dataSync()), 0);
      expect(Math.abs(el - ex) / ex).toBeLessThan(1e-6);
      // <Ax, Ay> = <x, y>: inner products are preserved too, not just norms
      const ly = pyramid.decomposeSync(y, { stages, kind: 'haar' });
      const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
        let s = 0;
        for (let i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
      };
      const dxy = dot(x.dataSync(), y.dataSync());
      const dl = lx.reduce((sum, l, i) => sum + dot(l.dataSync(), ly[i].dataSync()), 0);
      expect(Math.abs(dl - dxy)).toBeLessThan(1e-6 * Math.sqrt(ex * energy(y.dataSync())));
      for (const t of [...lx, ...ly]) t.dispose();
    }
  });

  test('consistent: detail levels have zero 2x2 means; any levels recompose to an image that reduces to its coarser stages', () => {
    // 2x2 block means of a level, i.e. the Laplacian's coarse stage of it
    const means = (t: Tensor) => {
      const [c, d] = pyramid.decomposeSync(t, { stages: 2 });
      d.dispose();
      return c;
    };
    const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const x = image([3, 2, 64, 32], 41);
    const levels = pyramid.decomposeSync(x, { stages: 4, kind: 'consistent' });
    const lap = pyramid.decomposeSync(x, { stages: 4 });
    expect(Array.from(levels[0].dataSync())).toEqual(Array.from(lap[0].dataSync())); // the same means
    for (let s = 1; s < 4; s++) expect(maxAbs(means(levels[s]).dataSync())).toBeLessThan(1e-5);
    // levels that no image decomposes into (a model's): the image still reduces exactly to stage 0
    // and to every partial recomposition, unlike the Laplacian's (the check that can fail)
    const made = levels.map((l, s) => image(l.shape as number[], 50 + s));
    for (const kind of ['consistent', 'laplacian'] as const) {
      const out = pyramid.recomposeSync(made, { kind });
      const coarse = pyramid.decomposeSync(out, { stages: 4 })[0];
      const err = relError(coarse.dataSync(), made[0].dataSync());
      if (kind === 'consistent') expect(err).toBeLessThan(1e-5);
      else expect(err).toBeGreaterThan(0.05);
      const half = pyramid.previewSync(made, 3, { kind });
      const upTo3 = pyramid.recomposeSync(made.slice(0, 3), { kind });
      const err3 = relError(means(half).dataSync(), upTo3.dataSync());
      if (kind === 'consistent') expect(err3).toBeLessThan(1e-5);
    }
  });

  test('the async forms return Promises with the same bits as the sync forms', async () => {
    const bits = (t: Tensor) => Buffer.from(t.dataSync().buffer);
    const same = (a: Tensor, b: Tensor) => expect(Buffer.compare(bits(a), bits(b))).toBe(0);
    const x = image([2, 3, 64, 32], 21);
    for (const kind of kinds) {
      const promise = pyramid.decompose(x, { stages: 3, kind });
      expect(promise).toBeInstanceOf(Promise);
      const levels = await promise;
      const sync = pyramid.decomposeSync(x, { stages: 3, kind });
      levels.forEach((l, i) => same(l, sync[i]));
      same(await pyramid.recompose(levels, { kind }), pyramid.recomposeSync(sync, { kind }));
      same(await pyramid.preview(levels, 2, { kind }), pyramid.previewSync(sync, 2, { kind }));
    }
  });

  test('defaults: 2 stages, Laplacian; preview of every stage is recompose', () => {
    const x = image([1, 3, 8, 8], 31);
    const levels = pyramid.decomposeSync(x);
    expect(levels.map((l) => l.shape)).toEqual([
      [1, 3, 4, 4],
      [1, 3, 8, 8],
    ]);
    const lap = pyramid.decomposeSync(x, { stages: 2, kind: 'laplacian' });
    expect(Array.from(levels[1].dataSync())).toEqual(Array.from(lap[1].dataSync()));
    expect(Array.from(pyramid.previewSync(levels, 2).dataSync())).toEqual(Array.from(pyramid.recomposeSync(levels).dataSync()));
  });
});

describe('options.out: writing into the caller\'s tensors', () => {
  test.each(kinds)('%s: decompose, recompose and preview into given tensors return them, same bits', async (kind) => {
    const x = image([3, 2, 32, 16], 41);
    const want = pyramid.decomposeSync(x, { stages: 3, kind });
    const out = want.map((l) => Tensor.zeros(l.shape));
    const got = pyramid.decomposeSync(x, { stages: 3, kind, out });
    got.forEach((t, i) => {
      expect(t).toBe(out[i]);
      expect(Array.from(t.dataSync())).toEqual(Array.from(want[i].dataSync()));
    });
    const img = Tensor.zeros(x.shape);
    expect(pyramid.recomposeSync(got, { kind, out: img })).toBe(img);
    expect(Array.from(img.dataSync())).toEqual(Array.from(pyramid.recomposeSync(want, { kind }).dataSync()));
    expect(pyramid.previewSync(got, 2, { kind, out: img })).toBe(img);
    expect(Array.from(img.dataSync())).toEqual(Array.from(pyramid.previewSync(want, 2, { kind }).dataSync()));
    const again = out.map((l) => Tensor.zeros(l.shape));
    expect(await pyramid.decompose(x, { stages: 3, kind, out: again })).toEqual(again);
    expect(Array.from(again[2].dataSync())).toEqual(Array.from(want[2].dataSync()));
    expect(await pyramid.recompose(got, { kind, out: img })).toBe(img);
  });

  test('bad outputs are errors with codes', async () => {
    const x = image([2, 3, 16, 8], 1);
    const levels = pyramid.decomposeSync(x, { stages: 3 });
    const fresh = () => levels.map((l) => Tensor.zeros(l.shape));
    const cases: Array<[() => unknown, string, RegExp]> = [
      [() => pyramid.decomposeSync(x, { stages: 3, out: fresh().slice(1) }), 'ERR_DECOFLOW_SHAPE', /options.out: expected 3 tensors/],
      [() => pyramid.decomposeSync(x, { stages: 3, out: [] }), 'ERR_DECOFLOW_SHAPE', /options.out: expected one tensor per stage/],
      [() => pyramid.decomposeSync(x, { stages: 3, out: fresh().reverse() }), 'ERR_DECOFLOW_SHAPE', /options.out\[0\]: expected shape \[2, 3, 4, 2\]/],
      [() => pyramid.decomposeSync(x, { stages: 3, out: [...fresh().slice(0, 2), x] }), 'ERR_DECOFLOW_ARG_VALUE', /options.out\[2\]: shares memory with x/],
      [() => pyramid.decomposeSync(x, { stages: 3, out: [levels[0], levels[1], Tensor.zeros([2, 3, 16, 8], { dtype: 'i32' })] }), 'ERR_DECOFLOW_DTYPE', /options.out\[2\]/],
      [() => pyramid.decomposeSync(x, { stages: 3, out: [levels[0], levels[1], {} as Tensor] }), 'ERR_DECOFLOW_ARG_TYPE', /options.out\[2\]/],
      [() => pyramid.recomposeSync(levels, { out: levels[2] }), 'ERR_DECOFLOW_ARG_VALUE', /options.out: shares memory with levels\[2\]/],
      [() => pyramid.recomposeSync(levels, { out: levels[1] }), 'ERR_DECOFLOW_SHAPE', /options.out: expected shape \[2, 3, 16, 8\]/],
      [() => pyramid.previewSync(levels, 1, { out: [] as unknown as Tensor }), 'ERR_DECOFLOW_ARG_TYPE', /options.out/],
    ];
    for (const [fn, code, message] of cases) {
      const e = caught(fn);
      expect([e.code, e.message]).toEqual([code, expect.stringMatching(message)]);
    }
    const rejection = await caughtAsync(() => pyramid.recompose(levels, { out: levels[2] }));
    expect(rejection.code).toBe('ERR_DECOFLOW_ARG_VALUE');
  });
});

describe('bad input is an Error with a code', () => {
  const x = image([2, 3, 16, 8], 1);
  const levels = pyramid.decomposeSync(x, { stages: 3 });

  test.each([
    ['H not divisible by 2^(stages-1)', () => pyramid.decomposeSync(image([1, 1, 12, 8], 2), { stages: 4 }), 'ERR_DECOFLOW_SHAPE', /divisible by 8/],
    ['W not divisible by 2^(stages-1)', () => pyramid.decomposeSync(image([1, 1, 16, 6], 2), { stages: 3 }), 'ERR_DECOFLOW_SHAPE', /divisible by 4/],
    ['too many stages for the size', () => pyramid.decomposeSync(x, { stages: 5 }), 'ERR_DECOFLOW_SHAPE', /5 stages need/],
    ['stages 0', () => pyramid.decomposeSync(x, { stages: 0 }), 'ERR_DECOFLOW_ARG_VALUE', /stages: expected an integer from 1 to 16/],
    ['stages -2', () => pyramid.decomposeSync(x, { stages: -2 }), 'ERR_DECOFLOW_ARG_VALUE', /stages/],
    ['stages 17', () => pyramid.decomposeSync(x, { stages: 17 }), 'ERR_DECOFLOW_ARG_VALUE', /stages/],
    ['stages 1.5', () => pyramid.decomposeSync(x, { stages: 1.5 }), 'ERR_DECOFLOW_ARG_VALUE', /stages/],
    ['stages NaN', () => pyramid.decomposeSync(x, { stages: NaN }), 'ERR_DECOFLOW_ARG_VALUE', /NaN/],
    ['stages a string', () => pyramid.decomposeSync(x, { stages: '2' as unknown as number }), 'ERR_DECOFLOW_ARG_TYPE', /stages/],
    ['rank 3', () => pyramid.decomposeSync(image([3, 16, 8], 3)), 'ERR_DECOFLOW_SHAPE', /rank 4/],
    ['rank 5', () => pyramid.decomposeSync(image([1, 1, 1, 4, 4], 3)), 'ERR_DECOFLOW_SHAPE', /rank 4/],
    ['dtype i32', () => pyramid.decomposeSync(Tensor.from(new Int32Array(16), [1, 1, 4, 4], { dtype: 'i32' })), 'ERR_DECOFLOW_DTYPE', /expected dtype f32, got i32/],
    ['dtype f16', () => pyramid.decomposeSync(x.cast('f16')), 'ERR_DECOFLOW_DTYPE', /f32/],
    ['x not a Tensor', () => pyramid.decomposeSync([1, 2, 3] as unknown as Tensor), 'ERR_DECOFLOW_ARG_TYPE', /x: expected a Tensor/],
    ['unknown kind', () => pyramid.decomposeSync(x, { kind: 'dct' as PyramidKind }), 'ERR_DECOFLOW_ARG_VALUE', /'laplacian', 'haar' or 'consistent'/],
    ['empty levels', () => pyramid.recomposeSync([]), 'ERR_DECOFLOW_ARG_VALUE', /at least one level/],
    ['levels not an array', () => pyramid.recomposeSync(x as unknown as Tensor[]), 'ERR_DECOFLOW_ARG_TYPE', /levels/],
    ['a level that is not a Tensor', () => pyramid.recomposeSync([levels[0], {} as Tensor]), 'ERR_DECOFLOW_ARG_TYPE', /levels\[1\]/],
    ['levels that skip a stage', () => pyramid.recomposeSync([levels[0], levels[2]]), 'ERR_DECOFLOW_SHAPE', /levels\[1\]: expected shape \[2, 3, 8, 4\]/],
    ['levels fine to coarse', () => pyramid.recomposeSync([...levels].reverse()), 'ERR_DECOFLOW_SHAPE', /levels\[1\]/],
    ['levels of other channels', () => pyramid.recomposeSync([levels[0], levels[1].reshape([3, 2, 8, 4])]), 'ERR_DECOFLOW_SHAPE', /levels\[1\]/],
    ['a level of rank 3', () => pyramid.recomposeSync([levels[0].reshape([6, 4, 2])]), 'ERR_DECOFLOW_SHAPE', /levels\[0\]: expected .*rank 4/],
    ['a level of dtype i32', () => pyramid.recomposeSync([Tensor.from(new Int32Array(4), [1, 1, 2, 2], { dtype: 'i32' })]), 'ERR_DECOFLOW_DTYPE', /levels\[0\]/],
    ['preview upTo 0', () => pyramid.previewSync(levels, 0), 'ERR_DECOFLOW_ARG_VALUE', /upTo: expected an integer from 1 to 3/],
    ['preview upTo 4 of 3', () => pyramid.previewSync(levels, 4), 'ERR_DECOFLOW_ARG_VALUE', /upTo/],
    ['preview upTo Infinity', () => pyramid.previewSync(levels, Infinity), 'ERR_DECOFLOW_ARG_VALUE', /upTo/],
    ['options not an object', () => pyramid.decomposeSync(x, 3 as never), 'ERR_DECOFLOW_ARG_TYPE', /options/],
  ] as Array<[string, () => unknown, string, RegExp]>)('%s', (_name, fn, code, message) => {
    const e = caught(fn);
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  });

  test('a disposed tensor or level', () => {
    const y = image([1, 1, 4, 4], 5);
    const ly = pyramid.decomposeSync(y);
    y.dispose();
    expect(caught(() => pyramid.decomposeSync(y)).code).toBe('ERR_DECOFLOW_DISPOSED');
    ly[1].dispose();
    expect(caught(() => pyramid.recomposeSync(ly)).code).toBe('ERR_DECOFLOW_DISPOSED');
  });

  test('the async forms reject (never throw) with the same codes', async () => {
    const bad = image([1, 1, 12, 8], 2);
    const p = pyramid.decompose(bad, { stages: 4 });
    expect(p).toBeInstanceOf(Promise);
    expect((await caughtAsync(() => p)).code).toBe('ERR_DECOFLOW_SHAPE');
    expect((await caughtAsync(() => pyramid.decompose(x, { stages: 0 }))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect((await caughtAsync(() => pyramid.decompose(null as unknown as Tensor))).code).toBe('ERR_DECOFLOW_ARG_TYPE');
    expect((await caughtAsync(() => pyramid.recompose([]))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect((await caughtAsync(() => pyramid.recompose([levels[0], levels[2]]))).code).toBe('ERR_DECOFLOW_SHAPE');
    expect((await caughtAsync(() => pyramid.preview(levels, 9))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
  });
});
