import { getGemm, info, matmul, matmulSync, setGemm, Tensor } from '../lib';
import { caught, caughtAsync, randomArray, relError } from './helpers';

function reference(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, bShared: boolean): Float64Array {
  const c = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++) {
    const ao = z * m * k;
    const bo = bShared ? 0 : z * k * n;
    for (let i = 0; i < m; i++)
      for (let p = 0; p < k; p++) {
        const av = a[ao + i * k + p];
        for (let j = 0; j < n; j++) c[z * m * n + i * n + j] += av * b[bo + p * n + j];
      }
  }
  return c;
}

// Shapes that are not multiples of the built-in kernel's blocks (6 x 32 micro-tiles, 96/256/1024 panels).
const shapes: Array<[number, number, number, number, boolean]> = [
  [1, 1, 1, 1, false],
  [1, 7, 33, 5, false],
  [1, 97, 257, 1025, false],
  [1, 200, 513, 31, false],
  [3, 13, 29, 67, false],
  [4, 6, 32, 32, true],
];

const impls = info().blas.startsWith('none') ? (['builtin'] as const) : (['blas', 'builtin'] as const);

describe.each(impls)('matmul with the %s GEMM', (impl) => {
  beforeAll(() => setGemm(impl));
  afterAll(() => setGemm('auto'));

  test.each(shapes)('batch %i, [%i x %i] @ [. x %i] (b shared: %s)', async (batch, m, k, n, bShared) => {
    expect(getGemm()).toBe(impl);
    const a = randomArray(batch * m * k, m * 31 + k);
    const b = randomArray((bShared ? 1 : batch) * k * n, n * 17 + 3);
    const ta = Tensor.from(a, batch > 1 ? [batch, m, k] : [m, k]);
    const tb = Tensor.from(b, bShared ? [k, n] : batch > 1 ? [batch, k, n] : [k, n]);
    const ref = reference(a, b, batch, m, k, n, bShared);
    const sync = matmulSync(ta, tb);
    expect(sync.shape).toEqual(batch > 1 ? [batch, m, n] : [m, n]);
    // f32 accumulation over k terms of size <= 1: relative to the largest output
    expect(relError(sync.dataSync(), ref)).toBeLessThan(1e-5);
    const asyncResult = await matmul(ta, tb);
    expect(Array.from(asyncResult.dataSync())).toEqual(Array.from(sync.dataSync()));
    for (const t of [ta, tb, sync, asyncResult]) t.dispose();
  });
});

test('BLAS and built-in GEMM agree, and info() says which BLAS is loaded', () => {
  expect(typeof info().blas).toBe('string');
  if (impls.length === 1) return;
  const a = Tensor.randn([150, 300], { seed: 1 });
  const b = Tensor.randn([300, 70], { seed: 2 });
  setGemm('blas');
  const x = matmulSync(a, b).dataSync();
  setGemm('builtin');
  const y = matmulSync(a, b).dataSync();
  setGemm('auto');
  expect(relError(y, x)).toBeLessThan(1e-5);
});

describe('matmul bad input', () => {
  test('inner dimensions, ranks, dtypes, batches', async () => {
    const a = Tensor.zeros([3, 4]);
    const b = Tensor.zeros([5, 6]);
    const e = caught(() => matmulSync(a, b));
    expect(e.code).toBe('ERR_DECOFLOW_SHAPE');
    expect(e.message).toMatch(/inner dimensions/);
    expect((await caughtAsync(() => matmul(a, b))).code).toBe('ERR_DECOFLOW_SHAPE');
    expect(caught(() => matmulSync(Tensor.zeros([3]), a)).code).toBe('ERR_DECOFLOW_SHAPE');
    expect(caught(() => matmulSync(Tensor.zeros([2, 3, 4]), Tensor.zeros([3, 4, 5]))).code).toBe('ERR_DECOFLOW_SHAPE');
    expect(caught(() => matmulSync(Tensor.zeros([3, 4], { dtype: 'i32' }), Tensor.zeros([4, 2]))).code).toBe('ERR_DECOFLOW_DTYPE');
    expect(caught(() => matmulSync(a, 'b' as never)).code).toBe('ERR_DECOFLOW_ARG_TYPE');
    expect(caught(() => matmulSync(a, undefined as never)).message).toMatch(/matmulSync: b/);
    b.dispose();
    expect(caught(() => matmulSync(a, b)).code).toBe('ERR_DECOFLOW_DISPOSED');
    expect(caught(() => setGemm('fast' as never)).code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect((await caughtAsync(() => matmul(a, a, { onProgress: 5 as never }))).code).toBe('ERR_DECOFLOW_ARG_TYPE');
    a.dispose();
  });
});

test('async matmul runs off the event loop: a timer keeps firing while it runs', async () => {
  setGemm('builtin'); // the slower kernel makes the product long enough to observe
  const a = Tensor.randn([1200, 1200], { seed: 3 });
  const b = Tensor.randn([1200, 1200], { seed: 4 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const progress: number[] = [];
  const t0 = Date.now();
  const pending = matmul(a, b, { onProgress: (p) => progress.push(p.step) });
  a.dispose(); // the running job holds its inputs
  b.dispose();
  const c = await pending;
  const elapsed = Date.now() - t0;
  clearInterval(timer);
  setGemm('auto');
  expect(c.shape).toEqual([1200, 1200]);
  expect(Number.isFinite(c.dataSync()[12345])).toBe(true);
  // a blocked loop would give 0 or 1 ticks; allow for a busy 2-core machine
  expect(ticks).toBeGreaterThanOrEqual(Math.min(3, Math.floor(elapsed / 20)));
  expect(progress).toEqual([0, 1]); // every progress event is delivered before the Promise settles
  c.dispose();
});
