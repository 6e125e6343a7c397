// What `decoflow bench` reports: the JSON document (schema 'decoflow-bench/1'), its validation, the
// comparison with an earlier report (--baseline) and the tables printed on a terminal.
import type { BenchGroup, BenchUnit, CeilingId } from './bench-rows';
import { decoflowError } from './errors';

export const BENCH_SCHEMA = 'decoflow-bench/1';

/** Milliseconds per call. With several rounds, `median` is the best round's median. */
export interface BenchStats {
  median: number;
  min: number;
  max: number;
  /** Timed calls (all rounds). */
  reps: number;
}

export interface BenchPeerResult {
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  ms?: BenchStats;
  rate?: number | null;
  share?: number | null;
  /** PyTorch's median time / decoflow's: above 1, decoflow is faster. */
  speedup?: number;
}

export interface BenchRow {
  id: string;
  group: BenchGroup;
  title: string;
  device: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  unit: BenchUnit | null;
  /** FLOPs or bytes per call (null: the row is timed in ms only). */
  work: number | null;
  ceiling: CeilingId | null;
  ms: BenchStats | null;
  /** work / median time, in `unit`. */
  rate: number | null;
  /** rate / the ceiling's measured value. */
  share: number | null;
  /** The PyTorch peer's run of the row (null: no --compare). */
  peer: BenchPeerResult | null;
}

export interface BenchMachine {
  cpu: { model: string; logicalCores: number; physicalCores: number | null; isa: string; fmaLanes: number; nativeArch: boolean };
  memoryGiB: number;
  os: string;
  /** 1, 5 and 15-minute load averages when the run started: the machine is shared, say how much. */
  loadAverage: number[];
  gpu: { name: string; driver: string | null } | null;
  versions: { decoflow: string; node: string; compiler: string | null; blas: string; gemm: string; torch: string | null; python: string | null };
}

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  date: string;
  machine: BenchMachine;
  options: {
    device: string;
    threads: number;
    budget: number;
    warmup: number;
    minReps: number;
    maxReps: number;
    rounds: number;
    compare: 'torch' | null;
  };
  /** The peer of --compare torch: found and used, or why not. */
  peer: { name: 'torch'; status: 'ok' | 'none'; version?: string; python?: string; threads?: number; reason?: string } | null;
  /** Measured ceilings by id (GFLOP/s or GB/s): the best call of each ceiling row and of its second measurement after the rows. */
  ceilings: Partial<Record<CeilingId, number>>;
  rows: BenchRow[];
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// Validation

function formatError(where: string, what: string): Error {
  return decoflowError('ERR_DECOFLOW_FORMAT', `bench report: ${where}: ${what}`);
}

function expectType(value: unknown, type: 'string' | 'number' | 'object' | 'boolean', where: string, nullable = false): void {
  if (value === null && nullable) return;
  const ok = type === 'object' ? typeof value === 'object' && value !== null && !Array.isArray(value) : typeof value === type;
  if (!ok || (type === 'number' && !Number.isFinite(value as number)))
    throw formatError(where, `expected ${type === 'number' ? 'a finite number' : `a ${type}`}${nullable ? ' or null' : ''}, got ${JSON.stringify(value)}`);
}

function validateStats(s: unknown, where: string): void {
  expectType(s, 'object', where);
  const o = s as Record<string, unknown>;
  for (const k of ['median', 'min', 'max', 'reps']) expectType(o[k], 'number', `${where}.${k}`);
  const { median, min, max } = o as unknown as BenchStats;
  if (!(min <= median && median <= max)) throw formatError(where, `expected min <= median <= max, got ${min}, ${median}, ${max}`);
}

/** Checks that `value` is a bench report of this schema; throws ERR_DECOFLOW_FORMAT naming the first bad field. */
export function validateBenchReport(value: unknown): BenchReport {
  expectType(value, 'object', 'the document');
  const r = value as Record<string, unknown>;
  if (r.schema !== BENCH_SCHEMA) throw formatError('schema', `expected '${BENCH_SCHEMA}', got ${JSON.stringify(r.schema)}`);
  expectType(r.date, 'string', 'date');
  expectType(r.machine, 'object', 'machine');
  const m = r.machine as Record<string, unknown>;
  expectType(m.cpu, 'object', 'machine.cpu');
  expectType((m.cpu as Record<string, unknown>).model, 'string', 'machine.cpu.model');
  expectType((m.cpu as Record<string, unknown>).logicalCores, 'number', 'machine.cpu.logicalCores');
  expectType((m.cpu as Record<string, unknown>).isa, 'string', 'machine.cpu.isa');
  expectType(m.gpu, 'object', 'machine.gpu', true);
  expectType(m.versions, 'object', 'machine.versions');
  expectType((m.versions as Record<string, unknown>).decoflow, 'string', 'machine.versions.decoflow');
  expectType(r.options, 'object', 'options');
  const o = r.options as Record<string, unknown>;
  expectType(o.device, 'string', 'options.device');
  expectType(o.threads, 'number', 'options.threads');
  expectType(r.ceilings, 'object', 'ceilings');
  for (const [k, v] of Object.entries(r.ceilings as object)) expectType(v, 'number', `ceilings['${k}']`);
  if (!Array.isArray(r.rows)) throw formatError('rows', 'expected an array');
  r.rows.forEach((row: unknown, i: number) => {
    const w = `rows[${i}]`;
    expectType(row, 'object', w);
    const x = row as Record<string, unknown>;
    expectType(x.id, 'string', `${w}.id`);
    expectType(x.device, 'string', `${w}.device`);
    if (!['ok', 'skipped', 'failed'].includes(x.status as string)) throw formatError(`${w}.status`, `expected 'ok', 'skipped' or 'failed', got ${JSON.stringify(x.status)}`);
    if (x.unit !== null && x.unit !== 'GFLOP/s' && x.unit !== 'GB/s') throw formatError(`${w}.unit`, `expected 'GFLOP/s', 'GB/s' or null, got ${JSON.stringify(x.unit)}`);
    expectType(x.work, 'number', `${w}.work`, true);
    if (x.status === 'ok') {
      validateStats(x.ms, `${w}.ms`);
      expectType(x.rate, 'number', `${w}.rate`, x.unit === null);
    } else {
      expectType(x.reason, 'string', `${w}.reason`);
    }
    if (x.peer !== null && x.peer !== undefined) {
      expectType(x.peer, 'object', `${w}.peer`);
      const p = x.peer as Record<string, unknown>;
      if (p.status === 'ok') {
        validateStats(p.ms, `${w}.peer.ms`);
        expectType(p.speedup, 'number', `${w}.peer.speedup`);
      } else expectType(p.reason, 'string', `${w}.peer.reason`);
    }
  });
  return value as BenchReport;
}

// ---------------------------------------------------------------------------------------------
// Baseline

export interface BaselineRow {
  id: string;
  device: string;
  baselineMs: number | null;
  currentMs: number | null;
  /** current / baseline - 1: +0.25 is 25% slower. */
  change: number | null;
  verdict: 'slower' | 'faster' | 'same' | 'new' | 'missing' | 'not compared';
  note?: string;
}

export interface BaselineComparison {
  tolerance: number;
  rows: BaselineRow[];
  /** Rows slower than the baseline by more than the tolerance. */
  slower: string[];
  ok: boolean;
}

/**
 * Compares the median time of every row with the baseline's row of the same id and device. A row
 * slower by more than `tolerance` (0.1: 10%) fails the comparison; ceiling rows are listed (they
 * say whether the machine itself changed) but never fail it, and rows present on one side only or
 * skipped on either are reported, not failed.
 */
export function compareBaseline(current: BenchReport, baseline: BenchReport, tolerance = 0.1): BaselineComparison {
  if (!(Number.isFinite(tolerance) && tolerance >= 0))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `compareBaseline: tolerance: expected a number >= 0, got ${tolerance}`);
  const key = (r: BenchRow) => `${r.device} ${r.id}`;
  const before = new Map(baseline.rows.map((r) => [key(r), r]));
  const rows: BaselineRow[] = [];
  for (const r of current.rows) {
    const b = before.get(key(r));
    before.delete(key(r));
    const base = { id: r.id, device: r.device, baselineMs: b?.ms?.median ?? null, currentMs: r.ms?.median ?? null };
    if (!b) {
      rows.push({ ...base, change: null, verdict: 'new' });
      continue;
    }
    if (r.status !== 'ok' || b.status !== 'ok') {
      rows.push({ ...base, change: null, verdict: 'not compared', note: r.status !== 'ok' ? `now ${r.status}` : `${b.status} in the baseline` });
      continue;
    }
    const change = r.ms!.median / b.ms!.median - 1;
    const verdict = change > tolerance ? 'slower' : change < -tolerance ? 'faster' : 'same';
    rows.push({ ...base, change, verdict, note: r.group === 'ceiling' ? "the machine's ceiling: never fails the comparison" : undefined });
  }
  for (const b of before.values()) rows.push({ id: b.id, device: b.device, baselineMs: b.ms?.median ?? null, currentMs: null, change: null, verdict: 'missing' });
  const ceilings = new Set(current.rows.filter((r) => r.group === 'ceiling').map(key));
  const slower = rows.filter((r) => r.verdict === 'slower' && !ceilings.has(`${r.device} ${r.id}`)).map((r) => r.id);
  return { tolerance, rows, slower, ok: slower.length === 0 };
}

// ---------------------------------------------------------------------------------------------
// Tables

function num(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(100 * v).toFixed(0)}%`);

function alignTable(header: string[], body: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...body.map(line)].join('\n') + '\n';
}

/** The rows as an aligned table: decoflow's median, min, max, rate and share of the ceiling, and the peer's. */
export function formatBenchTable(report: BenchReport): string {
  const peer = report.options.compare !== null;
  const header = ['row', 'ms', 'min', 'max', 'n', 'rate', 'of ceiling'];
  if (peer) header.push('torch ms', 'torch rate', 'torch of ceiling', 'x torch');
  const body: string[][] = [];
  const notes = new Map<string, string[]>(); // what happened -> the rows it happened to
  const note = (what: string, id: string) => notes.set(what, [...(notes.get(what) ?? []), id]);
  for (const r of report.rows) {
    const unit = r.unit ? ` ${r.unit}` : '';
    if (r.status !== 'ok') {
      note(`${r.status}: ${r.reason}`, r.id);
      continue;
    }
    const cells = [r.id, num(r.ms!.median), num(r.ms!.min), num(r.ms!.max), String(r.ms!.reps), r.rate === null ? '-' : `${num(r.rate)}${unit}`, pct(r.share)];
    if (peer) {
      const p = r.peer;
      if (p?.status === 'ok') cells.push(num(p.ms!.median), p.rate === null || p.rate === undefined ? '-' : `${num(p.rate)}${unit}`, pct(p.share), `${num(p.speedup)}x`);
      else {
        cells.push('-', '-', '-', '-');
        if (p?.status === 'failed') note(`the peer failed: ${p.reason}`, r.id);
      }
    }
    body.push(cells);
  }
  let out = body.length ? alignTable(header, body) : '';
  for (const [what, ids] of notes) out += `${what}\n  ${ids.join(', ')}\n`;
  return out;
}

/** What the machine and the run were, in a few lines. */
export function formatBenchHeader(report: BenchReport): string {
  const m = report.machine;
  const o = report.options;
  const lines = [
    `decoflow ${m.versions.decoflow} bench, ${report.date}: ${o.device}, ${o.threads} thread(s), ${o.budget} s per row, ${o.rounds} round(s)`,
    `cpu: ${m.cpu.model}, ${m.cpu.logicalCores} logical cores, ${m.cpu.isa} (${m.cpu.fmaLanes} f32 lanes)${m.cpu.nativeArch ? ', built for this CPU' : ''}; load ${m.loadAverage.map((l) => l.toFixed(2)).join(' ')}`,
    `blas: ${m.versions.blas}; node ${m.versions.node}${m.gpu ? `; gpu: ${m.gpu.name}, driver ${m.gpu.driver ?? '?'}` : ''}`,
  ];
  if (report.peer) lines.push(report.peer.status === 'ok' ? `peer: PyTorch ${report.peer.version} (${report.peer.python}), ${report.peer.threads} thread(s)` : `peer: none (${report.peer.reason})`);
  return lines.join('\n') + '\n';
}

/** The baseline comparison as a table and a verdict line. */
export function formatBaselineComparison(c: BaselineComparison): string {
  const body = c.rows.map((r) => [
    r.id,
    num(r.baselineMs),
    num(r.currentMs),
    r.change === null ? '-' : `${r.change >= 0 ? '+' : ''}${(100 * r.change).toFixed(1)}%`,
    r.verdict + (r.note ? ` (${r.note})` : ''),
  ]);
  const verdict = c.ok
    ? `baseline: no row slower by more than ${(100 * c.tolerance).toFixed(0)}%`
    : `baseline: ${c.slower.length} row(s) slower by more than ${(100 * c.tolerance).toFixed(0)}%: ${c.slower.join(', ')}`;
  return alignTable(['row', 'baseline ms', 'now ms', 'change', 'verdict'], body) + verdict + '\n';
}
