import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backends, getThreads, info, matmulSync, setThreads, Tensor } from '../lib';
import { caught, relError } from './helpers';

const root = path.join(__dirname, '..');

test('backends() lists cpu as available and cuda with a reason when unusable', () => {
  const b = backends();
  const cpu = b.find((x) => x.name === 'cpu')!;
  const cuda = b.find((x) => x.name === 'cuda')!;
  expect(cpu.available).toBe(true);
  expect(cuda).toBeDefined();
  if (!cuda.available) expect(cuda.reason).toMatch(/library|driver|device/i);
  else expect(cuda.devices).toBeGreaterThan(0);
});

test('require(".") exposes backends() (the CommonJS build)', () => {
  const out = execFileSync(process.execPath, ['-e', "console.log(JSON.stringify(require('.').backends()))"], { cwd: root, encoding: 'utf8' });
  expect(JSON.parse(out).map((b: { name: string }) => b.name)).toEqual(['cpu', 'cuda']);
});

test('the ESM build loads too', () => {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', "import { info } from 'decoflow'; console.log(info().version)"], {
    cwd: root,
    encoding: 'utf8',
  });
  expect(out.trim()).toBe(require('../package.json').version);
});

test('the package loads without sharp; only the image functions fail, with a coded error', () => {
  // Every require('sharp') fails, as where its native binary cannot load.
  const script = `
    const Module = require('module');
    const load = Module._load;
    Module._load = function (request, ...rest) {
      if (request === 'sharp') throw new Error('sharp blocked by the test');
      return load.call(this, request, ...rest);
    };
    const df = require('.');
    const t = df.Tensor.randn([1, 1, 4, 4], { seed: 1 });
    const sum = Array.from(t.dataSync()).reduce((a, b) => a + b, 0);
    df.saveGrid(require('path').join(require('os').tmpdir(), 'decoflow-never-written.png'), t).then(
      () => console.log('saved'),
      (e) => console.log(JSON.stringify({ finite: Number.isFinite(sum), code: e.code, message: e.message })),
    );`;
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
  const r = JSON.parse(out);
  expect(r.finite).toBe(true);
  expect(r.code).toBe('ERR_DECOFLOW_NATIVE_MISSING');
  expect(r.message).toMatch(/'sharp' package.*sharp blocked by the test/);
});

test('decoflow info prints version, backends, BLAS and threads', () => {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'decoflow.js'), 'info'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^decoflow \d+\.\d+\.\d+/);
  expect(r.stdout).toMatch(/threads: \d+/);
  expect(r.stdout).toMatch(/BLAS: /);
  expect(r.stdout).toMatch(/cpu +available/);
  expect(r.stdout).toMatch(/cuda +(available|unavailable: .+)/);
  const bad = spawnSync(process.execPath, [path.join(root, 'bin', 'decoflow.js'), 'frobnicate'], { encoding: 'utf8' });
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/unknown command 'frobnicate'/);
});

test('setThreads changes the pool; results do not depend on the thread count', () => {
  const start = getThreads();
  const a = Tensor.randn([257, 129], { seed: 5 });
  const b = Tensor.randn([129, 65], { seed: 6 });
  const x = matmulSync(a, b).dataSync();
  setThreads(1);
  expect(getThreads()).toBe(1);
  expect(info().threads).toBe(1);
  const y = matmulSync(a, b).dataSync();
  setThreads(3);
  expect(getThreads()).toBe(3);
  const z = matmulSync(a, b).dataSync();
  setThreads(start);
  expect(relError(y, x)).toBeLessThan(1e-6);
  expect(relError(z, x)).toBeLessThan(1e-6);
  expect(caught(() => setThreads(-1)).code).toBe('ERR_DECOFLOW_ARG_VALUE');
  expect(caught(() => setThreads(1.5)).code).toBe('ERR_DECOFLOW_ARG_VALUE');
  expect(caught(() => setThreads('2' as never)).code).toBe('ERR_DECOFLOW_ARG_TYPE');
  expect(getThreads()).toBe(start);
});
