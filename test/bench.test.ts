// decoflow bench: the report's schema, the baseline comparison, every row's work against a hand
// count, and --compare torch without PyTorch. Budgets are tiny: these check the harness, not speed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  attentionWork,
  bench,
  BENCH_DEFAULT_ROWS,
  compareBaseline,
  findTorchPeer,
  fmaWork,
  formatBenchTable,
  getThreads,
  parseRow,
  pyramidWork,
  resolveRows,
  stats,
  validateBenchReport,
  type BenchReport,
} from '../lib';
import { caught, caughtAsync } from './helpers';

const root = path.join(__dirname, '..');
const cli = (args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'decoflow.js'), 'bench', ...args], { encoding: 'utf8' });
const tiny = { budget: 0, warmup: 0, minReps: 1, maxReps: 2 };
const ctx = { device: 'cpu' as const, threads: 2 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-bench-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A stand-in for a Python: a shell script that prints `stdout`, `stderr` and exits with `code`. */
function fakePython(name: string, stdout: string, stderr = '', code = 0): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(`${file}.out`, `${stdout}\n`);
  fs.writeFileSync(`${file}.err`, `${stderr}\n`);
  fs.writeFileSync(file, `#!/bin/sh\ncat '${file}.out'\ncat '${file}.err' >&2\nexit ${code}\n`, { mode: 0o755 });
  return file;
}

let report: BenchReport;
beforeAll(async () => {
  const progress: number[] = [];
  report = await bench({
    rows: ['gemm:64', 'attention:fwdbwd:1x2x64x32:causal', 'pyramid:laplacian:2x1x16x16:2', 'pyramid:haar:2x1x16x16:3:out', 'train:tiny', 'eval:frechet:16'],
    ...tiny,
    onProgress: (p) => progress.push(p.done / p.total),
  });
  expect(progress[progress.length - 1]).toBe(1);
  expect([...progress].sort((a, b) => a - b)).toEqual(progress);
});

describe('the report', () => {
  test('follows the schema: machine, options, ceilings first, every row timed with its rate and share', () => {
    const r = validateBenchReport(JSON.parse(JSON.stringify(report)));
    expect(r.schema).toBe('decoflow-bench/1');
    expect(r.machine.cpu.model.length).toBeGreaterThan(0);
    expect(r.machine.cpu.logicalCores).toBeGreaterThan(0);
    expect(['avx512f', 'avx2+fma', 'avx', 'neon', 'sse2']).toContain(r.machine.cpu.isa);
    expect(r.machine.versions.decoflow).toBe(require('../package.json').version);
    expect(r.options).toMatchObject({ device: 'cpu', budget: 0, warmup: 0, minReps: 1, compare: null });
    expect(r.rows.map((x) => x.id)).toEqual([
      'ceiling:fma',
      'ceiling:copy',
      'gemm:64',
      'attention:fwdbwd:1x2x64x32:causal',
      'pyramid:laplacian:2x1x16x16:2',
      'pyramid:haar:2x1x16x16:3:out',
      'train:tiny',
      'eval:frechet:16',
    ]);
    for (const row of r.rows) {
      expect(row.status).toBe('ok');
      expect(row.ms!.min).toBeLessThanOrEqual(row.ms!.median);
      expect(row.ms!.median).toBeLessThanOrEqual(row.ms!.max);
      expect(row.ms!.reps).toBeGreaterThanOrEqual(1);
      expect(row.peer).toBeNull();
      if (row.unit === null) {
        expect(row.rate).toBeNull();
        continue;
      }
      expect(row.rate).toBeCloseTo(row.work! / row.ms!.median / 1e6, 6);
      if (row.ceiling) expect(row.share).toBeCloseTo(row.rate! / r.ceilings[row.ceiling]!, 6);
    }
    // A ceiling is the best call of its row and of its second measurement after the rows: at least
    // the row's best rate; a plausible FMA peak and copy bandwidth.
    const fma = r.rows[0];
    expect(r.ceilings['ceiling:fma']! / (fma.work! / fma.ms!.min / 1e6)).toBeGreaterThanOrEqual(1 - 1e-12);
    expect(r.ceilings['ceiling:fma']!).toBeGreaterThan(0.5 * r.options.threads);
    expect(r.ceilings['ceiling:copy']!).toBeGreaterThan(0.1);
    expect(formatBenchTable(r)).toMatch(/^row +ms +min +max +n +rate +of ceiling\n/);
  });

  test('a damaged report is refused with ERR_DECOFLOW_FORMAT naming the field', () => {
    const copy = () => JSON.parse(JSON.stringify(report));
    const cases: Array<[(r: Record<string, any>) => void, RegExp]> = [
      [(r) => (r.schema = 'other/1'), /schema/],
      [(r) => delete r.machine.cpu.model, /machine\.cpu\.model/],
      [(r) => (r.rows[2].ms.median = 'fast'), /rows\[2\]\.ms\.median/],
      [(r) => (r.rows[2].ms.min = r.rows[2].ms.max + 1), /rows\[2\]\.ms: expected min <= median <= max/],
      [(r) => (r.rows[3].status = 'great'), /rows\[3\]\.status/],
      [(r) => (r.rows[3].unit = 'TFLOP/s'), /rows\[3\]\.unit/],
      [(r) => (r.rows = {}), /rows: expected an array/],
    ];
    for (const [damage, message] of cases) {
      const r = copy();
      damage(r);
      const e = caught(() => validateBenchReport(r));
      expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
      expect(e.message).toMatch(message);
    }
  });
});

describe('the baseline comparison', () => {
  /** The report with each named row's median time multiplied. */
  function scaled(factors: Record<string, number>): BenchReport {
    const r: BenchReport = JSON.parse(JSON.stringify(report));
    for (const row of r.rows) if (factors[row.id]) row.ms!.median *= factors[row.id];
    return r;
  }

  test('a row slower than the tolerance fails; faster, equal and within-tolerance rows pass', () => {
    const slower = compareBaseline(scaled({ 'gemm:64': 1.2 }), report, 0.1);
    expect(slower.ok).toBe(false);
    expect(slower.slower).toEqual(['gemm:64']);
    expect(slower.rows.find((x) => x.id === 'gemm:64')).toMatchObject({ verdict: 'slower' });
    expect(slower.rows.find((x) => x.id === 'gemm:64')!.change).toBeCloseTo(0.2, 9);
    const faster = compareBaseline(scaled({ 'gemm:64': 0.5, 'train:tiny': 0.8 }), report, 0.1);
    expect(faster.ok).toBe(true);
    expect(faster.rows.find((x) => x.id === 'gemm:64')!.verdict).toBe('faster');
    const within = compareBaseline(scaled({ 'gemm:64': 1.08 }), report, 0.1);
    expect(within.ok).toBe(true);
    expect(within.rows.find((x) => x.id === 'gemm:64')!.verdict).toBe('same');
    expect(compareBaseline(scaled({ 'gemm:64': 1.08 }), report, 0.05).ok).toBe(false);
  });

  test("a slower ceiling is the machine's, not a failure; rows on one side only are listed", () => {
    expect(compareBaseline(scaled({ 'ceiling:copy': 3 }), report).ok).toBe(true);
    const fewer: BenchReport = JSON.parse(JSON.stringify(report));
    fewer.rows = fewer.rows.filter((x) => x.id !== 'train:tiny');
    const c = compareBaseline(fewer, report);
    expect(c.ok).toBe(true);
    expect(c.rows.find((x) => x.id === 'train:tiny')!.verdict).toBe('missing');
    expect(compareBaseline(report, fewer).rows.find((x) => x.id === 'train:tiny')!.verdict).toBe('new');
    expect(caught(() => compareBaseline(report, report, -1)).code).toBe('ERR_DECOFLOW_ARG_VALUE');
  });

  test('decoflow bench --baseline exits 1 on a slower row and 0 otherwise; --json writes a valid report', () => {
    const json = path.join(tmp, 'now.json');
    const base = ['gemm:32', '--budget', '0', '--warmup', '0', '--min-reps', '1', '--no-progress'];
    const first = cli([...base, '--json', json]);
    expect(first.status).toBe(0);
    const written = validateBenchReport(JSON.parse(fs.readFileSync(json, 'utf8')));
    const row = written.rows.find((x) => x.id === 'gemm:32')!;
    for (const [factor, code] of [
      [1e-6, 1], // the baseline was a million times faster: now slower
      [1e6, 0], // the baseline was a million times slower: now faster
    ] as const) {
      row.ms!.median = row.ms!.min = row.ms!.max = 1 * factor;
      fs.writeFileSync(path.join(tmp, 'base.json'), JSON.stringify(written));
      const r = cli([...base, '--baseline', path.join(tmp, 'base.json'), '--tolerance', '10%']);
      expect(r.status).toBe(code);
      expect(r.stdout).toMatch(code ? /baseline: 1 row\(s\) slower by more than 10%: gemm:32/ : /baseline: no row slower/);
    }
    fs.writeFileSync(path.join(tmp, 'bad.json'), '{"schema": "x"}');
    const bad = cli([...base, '--baseline', path.join(tmp, 'bad.json')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--baseline: .*not a decoflow bench report: bench report: schema/);
  });
});

describe('the work of each row', () => {
  test('GEMM, attention and pyramid rows against a hand count', () => {
    expect(parseRow('gemm:64', ctx).work).toBe(2 * 64 * 64 * 64);
    expect(parseRow('gemm:32x48x16:builtin', ctx).work).toBe(2 * 32 * 48 * 16);
    // FlashAttention's count: forward 4 B H N^2 D; forward + backward 3.5x; causal half.
    expect(parseRow('attention:fwd:8x4x256x64', ctx).work).toBe(4 * 8 * 4 * 256 * 256 * 64);
    expect(parseRow('attention:fwd:8x4x256x64', ctx).work).toBe(536870912);
    expect(parseRow('attention:fwdbwd:8x4x256x64', ctx).work).toBe(3.5 * 536870912);
    expect(parseRow('attention:fwdbwd:1x8x4096x64:causal', ctx).work).toBe((3.5 * 4 * 8 * 4096 * 4096 * 64) / 2);
    expect(attentionWork(2, 4, 1024, 64, 'fwd', false)).toBe(2147483648);
    // [64, 3, 64, 64], 2 stages: x is 786432 floats, the stages 196608 + 786432; each is read or
    // written once by decompose and once by recompose, 4 bytes each.
    expect(parseRow('pyramid:laplacian:64x3x64x64:2', ctx).work).toBe(2 * 4 * (786432 + 196608 + 786432));
    expect(pyramidWork([1, 1, 8, 8], 3)).toBe(2 * 4 * (64 + 4 + 16 + 64));
    expect(parseRow('pyramid:haar:64x3x64x64:2:out', ctx).work).toBe(parseRow('pyramid:laplacian:64x3x64x64:2', ctx).work);
    expect(parseRow('pyramid:consistent:64x3x64x64:2', ctx).work).toBe(parseRow('pyramid:laplacian:64x3x64x64:2', ctx).work);
    expect(parseRow('pyramid:consistent:64x3x64x64:2', ctx).peer).toBeNull();
  });

  test("the DiT rows count the model's FLOPs: a hand count of the 'tiny' training step and sampling", () => {
    // 'tiny': width 128, depth 4, MLP 512, 2 stages (16 and 32 px, patches 2 and 4, 3 channels),
    // 64 tokens, time features 256. Per stage: patch embedding 2 T P h, time MLP 2 (256 h + h^2),
    // final adaLN and linear 2 (2 h^2 + T h P), with P = 3 p^2 (12, 48).
    const h = 128, T = 64, m = 512, F = 256;
    const stage = (P: number) => 2 * T * P * h + 2 * (F * h + h * h) + 2 * (2 * h * h + T * h * P);
    expect(stage(12)).toBe(557056);
    expect(stage(48)).toBe(1736704);
    // Per block: adaLN 2 h 6h, qkv 2 T h 3h, attention 4 T^2 h, projection 2 T h^2, MLP 4 T h m.
    const block = 2 * h * 6 * h + 2 * T * h * 3 * h + 4 * T * T * h + 2 * T * h * h + 4 * T * h * m;
    expect(block).toBe(27459584);
    const forward = 557056 + 1736704 + 4 * 27459584;
    expect(forward).toBe(112132096);
    expect(parseRow('train:tiny', ctx).work).toBe(3 * 32 * forward); // forward + backward ~ 3x, batch 32
    expect(parseRow('sample:tiny', ctx).work).toBe(40 * 32 * forward); // 40 evaluations of 32 images
    // one stage ('tiny' as plain flow matching): one 32 px stage with 4 x 4 patches
    expect(parseRow('train:tiny:1', ctx).work).toBe(3 * 32 * (1736704 + 4 * 27459584));
  });

  test('the ceiling rows: FMA lanes x chains x 2 per iteration and thread; a copy reads and writes its bytes', () => {
    expect(fmaWork(2, 1000)).toBe(2 * 1000 * 12 * require('../build/Release/decoflow.node').benchInfo().lanes * 2);
    expect([4, 8, 16]).toContain(fmaWork(1, 1) / 24);
    expect(parseRow('ceiling:copy', ctx).work).toBe(2 * 128 * 2 ** 20);
    expect(parseRow('ceiling:gemm-bf16', { device: 'cuda', threads: 1 }).work).toBe(2 * 8192 ** 3);
    const fma = report.rows[0];
    expect(fma.work! % fmaWork(report.options.threads, 1)).toBe(0); // whole iterations on every thread
  });

  test('row ids and groups: defaults, ceilings first, each row once; bad ids are coded errors', () => {
    const ids = resolveRows(['gemm', 'gemm:1024', 'ceiling:copy'], ctx).map((s) => s.id);
    expect(ids).toEqual(['ceiling:fma', 'ceiling:copy', 'gemm:1024']);
    expect(resolveRows(undefined, ctx).map((s) => s.group)).toEqual(expect.arrayContaining(['ceiling', 'gemm', 'attention', 'pyramid', 'train', 'sample']));
    expect(resolveRows(undefined, ctx).some((s) => s.group === 'eval')).toBe(false);
    expect(BENCH_DEFAULT_ROWS.cpu.attention).toContain('attention:fwdbwd:2x4x1024x64');
    for (const [id, message] of [
      ['gemm:0', /expected 1 positive integers/],
      ['attention:fwd:1x2x3', /expected 4 positive integers/],
      ['attention:sideways:1x2x64x32', /expected 'fwd' or 'fwdbwd'/],
      ['pyramid:laplacian:1x1x8x8:2:in', /expected ':out'/],
      ['train:huge', /model size: expected one of tiny, small, S/],
      ['frobnicate', /unknown row or group/],
      ['gemm:64:mkl', /expected ':blas' or ':builtin'/],
    ] as const) {
      const e = caught(() => parseRow(id, ctx));
      expect(e.code).toBe('ERR_DECOFLOW_ARG_VALUE');
      expect(e.message).toMatch(message);
    }
  });
});

describe('rows that cannot run, and bad options', () => {
  test('on a CUDA device that is not there every row is skipped with the reason (or runs where one is)', async () => {
    const r = await bench({ rows: ['gemm:64', 'train:tiny'], device: 'cuda', ...tiny });
    expect(r.rows.map((x) => x.id)).toEqual(['ceiling:copy', 'ceiling:gemm-bf16', 'gemm:64', 'train:tiny']);
    const train = r.rows[3];
    expect(train.status).toBe('skipped');
    expect(train.reason).toMatch(/not available|CPU only/);
    if (r.rows[0].status === 'skipped') for (const row of r.rows) expect(row.reason).toMatch(/device 'cuda' is not available/);
  });

  test('bad options are coded errors; the CLI says what is wrong and exits 2', async () => {
    expect((await caughtAsync(() => bench({ device: 'tpu' as never }))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect((await caughtAsync(() => bench({ budget: -1 }))).message).toMatch(/options\.budget/);
    expect((await caughtAsync(() => bench({ rows: ['gemm:x'] }))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect((await caughtAsync(() => bench({ compare: 'jax' as never }))).message).toMatch(/options\.compare: expected 'torch'/);
    for (const [args, message] of [
      [['frobnicate'], /row 'frobnicate': unknown row or group/],
      [['--device', 'tpu'], /--device: expected 'cpu', 'cuda' or 'cuda:N'/],
      [['--compare', 'jax'], /--compare: expected 'torch'/],
      [['--tolerance', 'lots'], /--tolerance: expected a percentage/],
      [['--budget', '-2'], /--budget: expected seconds/],
      [['--python', '/usr/bin/python3'], /--python is the peer of --compare torch/],
    ] as const) {
      const r = cli([...args]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  test('threads: the run uses them (the FMA ceiling too) and gives the previous setting back', async () => {
    const before = getThreads();
    const r = await bench({ rows: ['gemm:16'], threads: 1, ...tiny });
    expect(r.options.threads).toBe(1);
    expect(r.rows[0].title).toMatch(/1 thread\(s\)/);
    expect(r.rows[0].work! % fmaWork(1, 1)).toBe(0);
    expect(getThreads()).toBe(before);
    expect((await caughtAsync(() => bench({ threads: 0 }))).message).toMatch(/options\.threads: expected an integer from 1 to 1024/);
    expect(getThreads()).toBe(before);
  });

  test('a failing row is reported as failed and the others still run', async () => {
    // 2^20 x 2^20 f32 operands: 4 TiB each, over decoflow's 1 TiB tensor limit, refused with a coded error
    const r = await bench({ rows: ['gemm:1048576', 'gemm:32'], ...tiny });
    const big = r.rows.find((x) => x.id === 'gemm:1048576')!;
    expect(big.status).toBe('failed');
    expect(big.reason).toMatch(/1 TiB limit \(ERR_DECOFLOW_SHAPE\)/);
    expect(r.rows.find((x) => x.id === 'gemm:32')!.status).toBe('ok');
  });
});

describe('--compare torch', () => {
  test('without PyTorch the rows run alone and the report says why there is no peer', async () => {
    const noTorch = fakePython('no-torch', '', "ModuleNotFoundError: No module named 'torch'", 1);
    const lines: string[] = [];
    const r = await bench({ rows: ['gemm:32'], compare: 'torch', python: noTorch, ...tiny, log: (l) => lines.push(l) });
    expect(r.peer).toMatchObject({ name: 'torch', status: 'none' });
    expect(r.peer!.reason).toMatch(/no PyTorch 2\.x found .*No module named 'torch'.*--python/);
    expect(lines.join('\n')).toMatch(/--compare torch: no PyTorch 2\.x found.*the rows run without a peer/);
    const gemm = r.rows.find((x) => x.id === 'gemm:32')!;
    expect(gemm.status).toBe('ok');
    expect(gemm.peer).toEqual({ status: 'skipped', reason: 'no peer' });
    validateBenchReport(JSON.parse(JSON.stringify(r)));
  });

  test('PyTorch 1.x (Debian python3-torch) is named and refused as a peer', () => {
    const old = fakePython('old-torch', '{"torch": "1.13.0a0", "python": "3.11.2", "cuda": false}');
    const found = findTorchPeer(old);
    expect(found.found).toBe(false);
    expect(!found.found && found.reason).toMatch(/has PyTorch 1\.13\.0a0; the peer needs PyTorch 2\.x/);
  });

  test('decoflow bench --compare torch with no PyTorch prints a clear message, the table, and exits 0', () => {
    const r = cli(['gemm:32', '--compare', 'torch', '--python', path.join(tmp, 'nowhere', 'python'), '--budget', '0', '--warmup', '0', '--min-reps', '1', '--no-progress']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/--compare torch: no PyTorch 2\.x found \(.*nowhere\/python: not found\)/);
    expect(r.stdout).toMatch(/peer: none/);
    expect(r.stdout).toMatch(/\ngemm:32 +[\d.]+ /);
    expect(r.stdout).toMatch(/x torch/);
  });

  // Runs where PyTorch 2.x is at hand (DECOFLOW_TORCH_PYTHON or the dev machines' /opt/torch-venv).
  const venv = [process.env.DECOFLOW_TORCH_PYTHON, '/opt/torch-venv/bin/python'].find((p) => p && fs.existsSync(p));
  const peer = venv ? findTorchPeer(venv) : null;
  (peer?.found ? test : test.skip)('with PyTorch 2.x each row gets the peer\'s times and decoflow / PyTorch', async () => {
    const r = await bench({ rows: ['gemm:64', 'pyramid:haar:2x1x16x16:2', 'attention:fwd:1x2x64x32'], compare: 'torch', python: venv, ...tiny });
    expect(r.peer).toMatchObject({ status: 'ok', threads: r.options.threads });
    expect(r.peer!.version).toMatch(/^2\./);
    for (const id of ['gemm:64', 'attention:fwd:1x2x64x32']) {
      const row = r.rows.find((x) => x.id === id)!;
      expect(row.peer!.status).toBe('ok');
      expect(row.peer!.speedup).toBeCloseTo(row.peer!.ms!.median / row.ms!.median, 9);
    }
    expect(r.rows.find((x) => x.id === 'pyramid:haar:2x1x16x16:2')!.peer).toEqual({ status: 'skipped', reason: 'PyTorch has no counterpart of this row' });
  });
});

test('stats: median of an even count is the mean of the middle two', () => {
  expect(stats([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, reps: 4 });
  expect(stats([5])).toEqual({ median: 5, min: 5, max: 5, reps: 1 });
});
