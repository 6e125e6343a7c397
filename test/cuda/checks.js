// The CUDA backend as a Node user meets it: tensors moved to and from the GPU, flash attention on
// f16/bf16 CUDA tensors and the pyramid on f32/bf16 CUDA tensors against the CPU ops, and the coded
// errors of bad input. (The pyramid check was added after the last GPU run.) Plain CommonJS with
// node:assert, so the same checks run under jest (test/cuda.test.ts, skipped without a GPU) and on
// the GPU machine with no node_modules (scripts/device-node-check.js).
'use strict';
const assert = require('node:assert/strict');

function codeOf(fn) {
  try {
    fn();
  } catch (e) {
    return e.code;
  }
  return undefined;
}

// Random N(0, 1) values rounded to `dtype`: the CPU f32 tensor of the rounded values and its cast.
function rounded(df, shape, seed, dtype) {
  const x = df.Tensor.randn(shape, { seed });
  const low = x.cast(dtype);
  const back = low.cast('f32');
  x.dispose();
  return { f32: back, low };
}

// max |got - ref| / max |ref| over two f32 arrays.
function relErr(got, ref) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (got[i] === ref[i]) continue;  // also the -Infinity lse of a query that sees no key
    if (!Number.isFinite(got[i]) || !Number.isFinite(ref[i])) return Infinity;
    num = Math.max(num, Math.abs(got[i] - ref[i]));
  }
  for (const r of ref) if (Number.isFinite(r)) den = Math.max(den, Math.abs(r));
  return den > 0 ? num / den : num;
}

const toCpuF32 = (t) => {
  const cpu = t.to('cpu');
  const f = cpu.dtype === 'f32' ? cpu : cpu.cast('f32');
  const data = f.dataSync();
  if (f !== cpu) f.dispose();
  cpu.dispose();
  return data;
};

function tensors(df, log = () => {}) {
  const x = df.Tensor.randn([3, 5, 7], { seed: 11 });
  const g = x.to('cuda');
  assert.equal(g.device, 'cuda:0');
  const before = df.memory()['cuda:0'];
  assert.ok(before && before.bytes >= 3 * 5 * 7 * 4, "memory()['cuda:0'] counts the tensor");
  assert.deepEqual(Array.from(g.to('cpu').dataSync()), Array.from(x.dataSync()), 'f32 round trip through the GPU');
  const b = x.cast('bf16');
  const bg = b.to('cuda');
  assert.deepEqual(Array.from(bg.to('cpu').dataSync()), Array.from(b.dataSync()), 'bf16 bits round trip');
  g.dispose();
  bg.dispose();
  const after = df.memory()['cuda:0'];
  assert.ok(after.tensors === before.tensors - 1 && after.bytes < before.bytes, 'dispose frees the CUDA tensors');
  const huge = () => df.Tensor.zeros([1 << 17, 1 << 20], { device: 'cuda' });  // 512 GiB
  assert.match(String(codeOf(huge)), /OUT_OF_MEMORY/);
  assert.equal(codeOf(() => x.to('cuda:63')), 'ERR_DECOFLOW_DEVICE');
  x.dispose();
  b.dispose();
  log('tensors: round trips, memory accounting, out-of-memory and bad device are coded errors');
}

const CASES = [
  { b: 2, h: 3, nq: 100, nk: 77, d: 64, causal: false },
  { b: 2, h: 3, nq: 100, nk: 77, d: 64, causal: true },
  { b: 1, h: 2, nq: 64, nk: 64, d: 128, causal: true },
  { b: 1, h: 1, nq: 33, nk: 129, d: 32, causal: false },
];

// Forward and backward on the GPU against the CPU op on the same rounded inputs; 16-bit inputs,
// outputs and P give errors of a few 1e-3, so the tolerance is 1e-2 of the largest reference value.
async function attention(df, log = () => {}) {
  for (const dtype of ['bf16', 'f16']) {
    for (const c of CASES) {
      const qs = [c.b, c.h, c.nq, c.d];
      const ks = [c.b, c.h, c.nk, c.d];
      const q = rounded(df, qs, 1, dtype), k = rounded(df, ks, 2, dtype), v = rounded(df, ks, 3, dtype);
      const dO = rounded(df, qs, 4, dtype);
      const opts = { causal: c.causal };
      const ref = df.attentionSync(q.f32, k.f32, v.f32, opts);
      const refG = df.attentionBackwardSync(q.f32, k.f32, v.f32, ref.o, ref.lse, dO.f32, opts);
      const [gq, gk, gv, gdO] = [q.low, k.low, v.low, dO.low].map((t) => t.to('cuda'));
      const out = await df.attention(gq, gk, gv, opts);  // the async form on the GPU too
      assert.equal(out.o.dtype, dtype);
      assert.equal(out.o.device, 'cuda:0');
      const grads = df.attentionBackwardSync(gq, gk, gv, out.o, out.lse, gdO, opts);
      const errs = {
        o: relErr(toCpuF32(out.o), ref.o.dataSync()),
        lse: relErr(toCpuF32(out.lse), ref.lse.dataSync()),
        dq: relErr(toCpuF32(grads.dq), refG.dq.dataSync()),
        dk: relErr(toCpuF32(grads.dk), refG.dk.dataSync()),
        dv: relErr(toCpuF32(grads.dv), refG.dv.dataSync()),
      };
      const label = `${dtype} B${c.b} H${c.h} nq${c.nq} nk${c.nk} D${c.d}${c.causal ? ' causal' : ''}`;
      for (const [name, e] of Object.entries(errs)) assert.ok(e <= 1e-2, `${label}: ${name} rel err ${e}`);
      log(`attention ${label}: ${Object.entries(errs).map(([n, e]) => `${n} ${e.toExponential(1)}`).join(' ')}`);
      for (const t of [q, k, v, dO].flatMap((p) => [p.f32, p.low]).concat([ref.o, ref.lse, refG.dq, refG.dk, refG.dv]))
        t.dispose();
      for (const t of [gq, gk, gv, gdO, out.o, out.lse, grads.dq, grads.dk, grads.dv]) t.dispose();
    }
  }
}

function attentionErrors(df, log = () => {}) {
  const q = df.Tensor.randn([1, 2, 8, 64], { seed: 5 });
  const qc = q.to('cuda');  // f32 on the GPU: no kernel
  const qb = q.cast('bf16').to('cuda');
  const qh = q.cast('f16').to('cuda');
  const odd = df.Tensor.randn([1, 2, 8, 48], { seed: 6 }).cast('bf16').to('cuda');
  assert.equal(codeOf(() => df.attentionSync(qc, qc, qc)), 'ERR_DECOFLOW_DTYPE');
  assert.equal(codeOf(() => df.attentionSync(qb, q, qb)), 'ERR_DECOFLOW_DEVICE');
  assert.equal(codeOf(() => df.attentionSync(qb, qh, qb)), 'ERR_DECOFLOW_DTYPE');
  assert.equal(codeOf(() => df.attentionSync(odd, odd, odd)), 'ERR_DECOFLOW_SHAPE');
  assert.equal(codeOf(() => df.attentionSync(qb, qb, qb, { scale: NaN })), 'ERR_DECOFLOW_NON_FINITE');
  for (const t of [q, qc, qb, qh, odd]) t.dispose();
  log('attention errors: f32 on cuda, mixed devices, mixed dtypes, head dim 48, NaN scale are coded');
}

// Pyramid decompose/recompose of CUDA tensors against the CPU op: f32 within 1e-5 of the largest
// value, bf16 within one bf16 rounding (2^-8) of the CPU's f32 result on the same rounded input,
// plus the round trip and a mixed-device error.
async function pyramid(df, log = () => {}) {
  for (const kind of ['laplacian', 'haar', 'consistent']) {
    for (const dtype of ['f32', 'bf16']) {
      for (const [shape, stages] of [[[2, 3, 40, 24], 3], [[1, 1, 64, 64], 4], [[3, 2, 18, 34], 2]]) {
        const x = rounded(df, shape, 7, dtype);
        const cpuLevels = df.pyramid.decomposeSync(x.f32, { kind, stages });
        const gx = (dtype === 'f32' ? x.f32 : x.low).to('cuda');
        const levels = await df.pyramid.decompose(gx, { kind, stages });
        assert.equal(levels.length, stages);
        const tol = dtype === 'f32' ? 1e-5 : 2 ** -8 + 1e-5;
        const errs = levels.map((l, i) => relErr(toCpuF32(l), cpuLevels[i].dataSync()));
        const back = df.pyramid.recomposeSync(levels, { kind });
        assert.equal(back.device, 'cuda:0');
        const roundTrip = relErr(toCpuF32(back), x.f32.dataSync());
        const label = `${kind} ${dtype} [${shape}] ${stages} stages`;
        errs.forEach((e, i) => assert.ok(e <= tol, `${label}: stage ${i} rel err ${e}`));
        // bf16: each stage is rounded once, and recompose adds them up (Laplacian details reach 2 max|x|;
        // the consistent kind's solve can double a rounding error of the highest spatial frequency).
        const bf16Bound = 2 ** -8 * (2 * stages + 1) * (kind === 'consistent' ? 2 : 1);
        assert.ok(roundTrip <= (dtype === 'f32' ? 1e-5 : bf16Bound), `${label}: round trip rel err ${roundTrip}`);
        log(`pyramid ${label}: stages ${errs.map((e) => e.toExponential(1)).join(' ')}, round trip ${roundTrip.toExponential(1)}`);
        for (const t of [x.f32, x.low, gx, back, ...levels, ...cpuLevels]) t.dispose();
      }
    }
  }
  const g = df.Tensor.randn([1, 1, 8, 8], { seed: 9 }).to('cuda');
  const c = df.Tensor.randn([1, 1, 4, 4], { seed: 9 });
  assert.equal(codeOf(() => df.pyramid.recomposeSync([c, g])), 'ERR_DECOFLOW_DEVICE');
  g.dispose();
  c.dispose();
  log('pyramid errors: levels on two devices are a coded error');
}

module.exports = { tensors, attention, attentionErrors, pyramid };
