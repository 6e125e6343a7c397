// Every CPU level (native/ops/cpu_level.h) that this machine can run, forced by DECOFLOW_CPU_LEVEL in
// a child process (the level is chosen once per process): attention forward and backward, the
// pyramids, the built-in GEMM, four training steps and a sample, each compared with the default
// (best) level within the tolerances of the op tests. The levels differ only in rounding (FMA
// contraction, vector widths), so they agree closely but not to the bit.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { info } from '../lib';

const DIST = path.join(__dirname, '..', 'dist', 'index.cjs');
const CHILD = path.join(__dirname, 'levels', 'run_level.js');

interface LevelRun {
  level: string;
  detail: string;
  attention: Record<string, number[]>;
  pyramid: Record<string, { levels: number[][]; back: number[] }>;
  gemmBuiltin: number[];
  gemm: number[];
  losses: number[];
  param: number[];
  sample: number[];
  error?: { code: string; message: string };
}

function run(level?: string): LevelRun {
  const env = { ...process.env };
  if (level) env.DECOFLOW_CPU_LEVEL = level;
  else delete env.DECOFLOW_CPU_LEVEL;
  const r = spawnSync(process.execPath, [CHILD, DIST], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`level ${level}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as LevelRun;
}

// max |a - b| / max(1, max |b|)
function relErr(a: number[], b: number[]): number {
  expect(a).toHaveLength(b.length);
  let err = 0, scale = 1;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

const i = info();
const levels = i.cpuLevelsSupported;

describe('CPU levels', () => {
  let best: LevelRun;
  beforeAll(() => {
    best = run();
  });

  test('the default is the best level this CPU supports', () => {
    expect(levels.length).toBeGreaterThanOrEqual(1);
    expect(levels[0]).toBe('baseline');
    expect(best.error).toBeUndefined();
    expect(best.level).toBe(levels[levels.length - 1]);
    expect(i.cpuLevels).toEqual(expect.arrayContaining(levels));
  });

  test.each(levels)('level %s: the ops, four training steps and a sample agree with the best level', (level) => {
    const r = run(level);
    expect(r.error).toBeUndefined();
    expect(r.level).toBe(level);
    expect(r.detail).toMatch(level === best.level ? new RegExp(`^${level}`) : /forced by DECOFLOW_CPU_LEVEL/);
    for (const name of ['o', 'lse', 'dq', 'dk', 'dv']) expect(relErr(r.attention[name], best.attention[name])).toBeLessThan(2e-5);
    for (const kind of ['laplacian', 'haar', 'consistent']) {
      r.pyramid[kind].levels.forEach((l, s) => expect(relErr(l, best.pyramid[kind].levels[s])).toBeLessThan(1e-6));
      expect(relErr(r.pyramid[kind].back, best.pyramid[kind].back)).toBeLessThan(1e-6);
    }
    expect(relErr(r.gemmBuiltin, best.gemmBuiltin)).toBeLessThan(1e-5);
    expect(relErr(r.gemm, best.gemm)).toBeLessThan(1e-5);
    r.losses.forEach((l, s) => expect(Math.abs(l - best.losses[s]) / best.losses[s]).toBeLessThan(1e-4));
    expect(relErr(r.param, best.param)).toBeLessThan(1e-4);
    expect(relErr(r.sample, best.sample)).toBeLessThan(1e-3);
  });

  test('a level that cannot run here is refused with a coded error', () => {
    const bad = run('avx1024');
    expect(bad.level).toBeNull();
    expect(bad.error?.code).toBe('ERR_DECOFLOW_BACKEND');
    expect(bad.error?.message).toMatch(/DECOFLOW_CPU_LEVEL: expected one of baseline, avx2, avx512, got 'avx1024'/);
    const unsupported = (['avx2', 'avx512'] as const).find((l) => !levels.includes(l));
    if (unsupported) expect(run(unsupported).error?.message).toMatch(/this CPU supports at most/);
  });
});
