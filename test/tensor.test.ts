import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { memory, releaseCachedMemory, Tensor } from '../lib';
import { caught, caughtAsync, randomArray } from './helpers';

describe('Tensor round trips', () => {
  test('f32: from -> dataSync and data() return the same values', async () => {
    const src = randomArray(2 * 3 * 5, 1);
    const t = Tensor.from(src, [2, 3, 5]);
    expect(t.shape).toEqual([2, 3, 5]);
    expect(t.dtype).toBe('f32');
    expect(t.device).toBe('cpu');
    expect(t.size).toBe(30);
    expect(Array.from(t.dataSync())).toEqual(Array.from(src));
    const async = await t.data();
    expect(Object.prototype.toString.call(async)).toBe('[object Float32Array]'); // from the addon's realm
    expect(Array.from(async)).toEqual(Array.from(src));
    t.dispose();
  });

  test('i32 round trip keeps extremes', () => {
    const src = Int32Array.from([0, -1, 2147483647, -2147483648, 42, 7]);
    const t = Tensor.from(src, [2, 3], { dtype: 'i32' });
    expect(t.dtype).toBe('i32');
    expect(Array.from(t.dataSync())).toEqual(Array.from(src));
    t.dispose();
  });

  test.each(['f16', 'bf16'] as const)('%s round trip of raw bits, and casts', (dtype) => {
    const bits = Uint16Array.from([0x0000, 0x8000, 0x3c00, 0x7bff, 0x0001, 0x3f80, 0x7f80, 0x1234]);
    const t = Tensor.from(bits, [8], { dtype });
    expect(t.dtype).toBe(dtype);
    expect(Array.from(t.dataSync())).toEqual(Array.from(bits));
    // cast f32 -> dtype -> f32 keeps values that the format represents exactly
    const exact = Float32Array.from([0, 1, -2, 0.5, 1.5, -0.25, 3, 96]);
    const back = Tensor.from(exact, [8]).cast(dtype).cast('f32');
    expect(Array.from(back.dataSync())).toEqual(Array.from(exact));
    // and rounds others to nearest with the format's relative precision
    const r = randomArray(1000, 9);
    const rounded = Tensor.from(r, [1000]).cast(dtype).cast('f32').dataSync();
    const eps = dtype === 'f16' ? 2 ** -11 : 2 ** -8;
    for (let i = 0; i < r.length; i++) expect(Math.abs(rounded[i] - r[i])).toBeLessThanOrEqual(eps * Math.abs(r[i]) + 1e-7);
    t.dispose();
  });

  test('known f16 and bf16 encodings', () => {
    const v = Float32Array.from([1, -2, 65504, 1e-7, 70000, 3.140625]);
    expect(Array.from(Tensor.from(v, [6]).cast('f16').dataSync())).toEqual([0x3c00, 0xc000, 0x7bff, 0x0002, 0x7c00, 0x4248]);
    expect(Array.from(Tensor.from(v, [6]).cast('bf16').dataSync().slice(0, 2))).toEqual([0x3f80, 0xc000]);
    expect(Array.from(Tensor.from(Float32Array.from([2.5, -3.9]), [2]).cast('i32').dataSync())).toEqual([2, -3]);
  });

  test('zeros and randn (seeded, reproducible, standard normal)', () => {
    const z = Tensor.zeros([4, 5]);
    expect(Array.from(z.dataSync()).every((x) => x === 0)).toBe(true);
    const a = Tensor.randn([100000], { seed: 7 }).dataSync();
    const b = Tensor.randn([100000], { seed: 7 }).dataSync();
    const c = Tensor.randn([100000], { seed: 8 }).dataSync();
    expect(Array.from(a.slice(0, 100))).toEqual(Array.from(b.slice(0, 100)));
    expect(a[0]).not.toBe(c[0]);
    let mean = 0;
    let sq = 0;
    for (const x of a) {
      mean += x;
      sq += x * x;
    }
    mean /= a.length;
    const std = Math.sqrt(sq / a.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(std - 1)).toBeLessThan(0.02);
    // element i does not depend on the tensor's size
    const prefix = Tensor.randn([13], { seed: 7 }).dataSync();
    expect(Array.from(prefix)).toEqual(Array.from(a.slice(0, 13)));
  });

  test('reshape shares storage; to() and cast() copy', () => {
    const before = memory().cpu;
    const t = Tensor.from(randomArray(24, 3), [2, 3, 4]);
    const r = t.reshape([6, -1]);
    expect(r.shape).toEqual([6, 4]);
    expect(memory().cpu.tensors).toBe(before.tensors + 1);
    const c = t.to('cpu');
    expect(memory().cpu.tensors).toBe(before.tensors + 2);
    t.dispose();
    expect(Array.from(r.dataSync())).toEqual(Array.from(c.dataSync())); // the view keeps storage alive
    r.dispose();
    c.dispose();
    expect(memory().cpu.tensors).toBe(before.tensors);
  });

  test('memory() returns to its starting count after dispose', () => {
    const before = memory().cpu;
    const ts = [Tensor.zeros([1000]), Tensor.randn([10, 10], { seed: 1 }), Tensor.from(new Int32Array(6), [6], { dtype: 'i32' })];
    const during = memory().cpu;
    expect(during.tensors).toBe(before.tensors + 3);
    expect(during.bytes).toBe(before.bytes + 4000 + 400 + 24);
    for (const t of ts) t.dispose();
    expect(memory().cpu.tensors).toBe(before.tensors);
    expect(memory().cpu.bytes).toBe(before.bytes);
  });

  test('freed large blocks are cached for reuse, counted apart from live memory, and released on request', () => {
    const before = memory().cpu;
    const big = Tensor.zeros([1 << 18]); // 1 MiB: cached when freed
    big.dispose();
    const after = memory().cpu;
    expect(after.tensors).toBe(before.tensors);
    expect(after.bytes).toBe(before.bytes);
    expect(after.cachedBytes).toBeGreaterThanOrEqual(1 << 20);
    const again = Tensor.randn([1 << 18], { seed: 1 }); // reuses the cached block
    expect(memory().cpu.cachedBytes).toBe(after.cachedBytes! - (1 << 20));
    expect(again.dataSync()[12345]).toBe(Tensor.randn([1 << 18], { seed: 1 }).dataSync()[12345]);
    again.dispose();
    releaseCachedMemory();
    expect(memory().cpu.cachedBytes).toBe(0);
  });

  test('Symbol.dispose releases the tensor', () => {
    const before = memory().cpu.tensors;
    const t = Tensor.zeros([8]);
    const dispose = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose');
    (t as unknown as Record<symbol, () => void>)[dispose]();
    expect(t.disposed).toBe(true);
    expect(memory().cpu.tensors).toBe(before);
    t.dispose(); // twice is fine
  });

  test('garbage-collected tensors free their storage (FinalizationRegistry safety net)', () => {
    const script = `
      const d = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'index.cjs'))});
      const before = d.memory().cpu.tensors;
      (function () { for (let i = 0; i < 50; i++) d.Tensor.zeros([1000]); })();
      const held = d.memory().cpu.tensors - before;
      const wait = () => new Promise((r) => setTimeout(r, 20));
      (async () => {
        for (let i = 0; i < 50 && d.memory().cpu.tensors > before; i++) { global.gc(); await wait(); }
        console.log(JSON.stringify({ held, left: d.memory().cpu.tensors - before }));
      })();`;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' }));
    expect(out.held).toBe(50);
    expect(out.left).toBe(0);
  });
});

describe('Tensor bad input', () => {
  const code = (fn: () => unknown) => caught(fn).code;

  test('typed array that does not match the dtype', () => {
    expect(code(() => Tensor.from(new Float64Array(4) as unknown as Float32Array, [4]))).toBe('ERR_DECOFLOW_DTYPE');
    expect(code(() => Tensor.from(new Float32Array(4), [4], { dtype: 'i32' }))).toBe('ERR_DECOFLOW_DTYPE');
    expect(code(() => Tensor.from(new Float32Array(4), [4], { dtype: 'bf16' }))).toBe('ERR_DECOFLOW_DTYPE');
    const e = caught(() => Tensor.from(new Int32Array(4), [4]));
    expect(e.message).toMatch(/Float32Array.*Int32Array/);
  });

  test('unknown dtype, non-array data', () => {
    expect(code(() => Tensor.from(new Float32Array(4), [4], { dtype: 'f64' as never }))).toBe('ERR_DECOFLOW_DTYPE');
    expect(code(() => Tensor.from([1, 2, 3] as unknown as Float32Array, [3]))).toBe('ERR_DECOFLOW_ARG_TYPE');
  });

  test('shape and length mismatch', () => {
    const e = caught(() => Tensor.from(new Float32Array(5), [2, 3]));
    expect(e.code).toBe('ERR_DECOFLOW_SHAPE');
    expect(e.message).toMatch(/5 elements.*\[2, 3\].*6/);
  });

  test.each([
    ['negative', [2, -3]],
    ['zero', [0]],
    ['fractional', [2.5, 2]],
    ['NaN', [NaN]],
    ['Infinity', [Infinity]],
    ['absurd', [1e9, 1e9, 1e9]],
    ['empty', []],
    ['rank 6', [1, 1, 1, 1, 1, 1]],
  ])('%s dimensions', (_name, shape) => {
    const e = caught(() => Tensor.zeros(shape as number[]));
    expect(e.code).toBe('ERR_DECOFLOW_SHAPE');
    expect(e.message).toMatch(/shape/);
  });

  test('wrong argument types', () => {
    expect(code(() => Tensor.zeros('3' as never))).toBe('ERR_DECOFLOW_ARG_TYPE');
    expect(code(() => Tensor.zeros(['3'] as never))).toBe('ERR_DECOFLOW_ARG_TYPE');
    expect(code(() => Tensor.zeros([3], 5 as never))).toBe('ERR_DECOFLOW_ARG_TYPE');
    expect(code(() => Tensor.randn([3], { seed: -1 }))).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(code(() => Tensor.randn([3], { seed: 1.5 }))).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect(code(() => new Tensor({} as never))).toBe('ERR_DECOFLOW_ARG_TYPE');
  });

  test('use after dispose', async () => {
    const t = Tensor.zeros([3]);
    t.dispose();
    expect(code(() => t.dataSync())).toBe('ERR_DECOFLOW_DISPOSED');
    expect(code(() => t.reshape([3]))).toBe('ERR_DECOFLOW_DISPOSED');
    expect(code(() => t.to('cpu'))).toBe('ERR_DECOFLOW_DISPOSED');
    expect((await caughtAsync(async () => t.data())).code).toBe('ERR_DECOFLOW_DISPOSED');
  });

  test('unknown and unavailable devices', () => {
    const t = Tensor.zeros([3]);
    expect(code(() => t.to('tpu' as never))).toBe('ERR_DECOFLOW_DEVICE');
    expect(code(() => t.to('cuda:x' as never))).toBe('ERR_DECOFLOW_DEVICE');
    expect(code(() => Tensor.zeros([3], { device: 'gpu' as never }))).toBe('ERR_DECOFLOW_DEVICE');
    const cuda = require('../lib').backends().find((b: { name: string }) => b.name === 'cuda');
    if (!cuda.available) {
      const e = caught(() => t.to('cuda'));
      expect(e.code).toBe('ERR_DECOFLOW_DEVICE');
      expect(e.message).toMatch(/not available/);
    } else {
      expect(code(() => t.to('cuda:63'))).toBe('ERR_DECOFLOW_DEVICE');
    }
    t.dispose();
  });

  test('reshape to a different size', () => {
    const t = Tensor.zeros([2, 3]);
    expect(code(() => t.reshape([4, 2]))).toBe('ERR_DECOFLOW_SHAPE');
    expect(code(() => t.reshape([-1, -1]))).toBe('ERR_DECOFLOW_SHAPE');
    expect(code(() => t.reshape([5, -1]))).toBe('ERR_DECOFLOW_SHAPE');
    expect(code(() => t.reshape([0, 6]))).toBe('ERR_DECOFLOW_SHAPE');
    t.dispose();
  });
});
