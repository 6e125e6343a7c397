// `bench(options)`: the benchmark harness behind `decoflow bench`. The machine's ceilings are measured
// first, then each row (lib/bench-rows.ts) is warmed up and timed until its budget is spent; with
// compare: 'torch' the PyTorch peer runs the same row right after, with the same threads and device,
// so both see the same machine. The report (lib/bench-report.ts) is plain JSON.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { findTorchPeer, TorchPeer, type BenchTiming } from './bench-peer';
import { BENCH_SCHEMA, type BenchMachine, type BenchPeerResult, type BenchReport, type BenchRow, type BenchStats } from './bench-report';
import { resolveRows, type CeilingId, type RowSpec } from './bench-rows';
import { decoflowError } from './errors';
import { native } from './native';
import { backends, getThreads, info, releaseCachedMemory, setThreads } from './runtime';
import type { Device } from './tensor';

export interface BenchProgress {
  /** Measurements done and to do (a row with a peer is two). */
  done: number;
  total: number;
  row: string;
  side: 'decoflow' | 'torch';
}

export interface BenchOptions {
  /** Row ids and group names (see lib/bench-rows.ts); default: every default group. */
  rows?: string[];
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: Device;
  /** CPU threads of decoflow and of the peer during the run (default: decoflow's current setting). */
  threads?: number;
  /** Seconds of timed calls per row and side (default 1). */
  budget?: number;
  /** Untimed calls before timing (default 2). */
  warmup?: number;
  /** At least this many timed calls (default 5), at most maxReps (default 1000). */
  minReps?: number;
  maxReps?: number;
  /** decoflow and the peer take turns this many times per row; the best round's median is kept (default 1). */
  rounds?: number;
  /** Also run each row in PyTorch 2.x. */
  compare?: 'torch' | null;
  /** The Python of the peer (default: $DECOFLOW_TORCH_PYTHON, then python3 or python on the PATH). */
  python?: string;
  onProgress?: (p: BenchProgress) => void;
  /** Messages about the run (the peer found or not), one line each. */
  log?: (line: string) => void;
}

/** Median (mean of the middle two for an even count), min and max. */
export function stats(samples: readonly number[]): BenchStats {
  if (samples.length === 0) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', 'stats: no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], reps: s.length };
}

/** ms per call of fn: `warmup` untimed calls, then timed ones until the budget is spent (see BenchTiming). */
export async function measure(fn: () => unknown, t: BenchTiming): Promise<number[]> {
  for (let i = 0; i < t.warmup; i++) await fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < t.maxReps) {
    const t0 = performance.now();
    const r = fn();
    if (r instanceof Promise) await r;
    samples.push(performance.now() - t0);
    if (samples.length >= t.minReps && performance.now() - start >= t.budgetMs) break;
  }
  return samples;
}

/** Pooled rounds: the best round's median (contention only ever adds time), min and max of all. */
function combineRounds(rounds: number[][]): BenchStats {
  const per = rounds.map(stats);
  const all = stats(rounds.flat());
  return { ...all, median: Math.min(...per.map((s) => s.median)) };
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function physicalCores(): number | null {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const cores = new Set<string>();
    for (const block of text.split(/\n\n+/)) {
      const phys = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1] ?? '0';
      const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
      if (core !== undefined) cores.add(`${phys}:${core}`);
    }
    return cores.size || null;
  } catch {
    return null;
  }
}

function gpuDescription(device: Device): BenchMachine['gpu'] {
  const cuda = backends().find((b) => b.name === 'cuda');
  if (!cuda?.available) return null;
  const index = device.startsWith('cuda:') ? Number(device.slice(5)) : 0; // 'cpu' and 'cuda': the first GPU
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader', `--id=${index}`], { encoding: 'utf8', timeout: 10_000 });
  const [name, driver] = r.status === 0 ? r.stdout.trim().split(',').map((s) => s.trim()) : [];
  return { name: name || (cuda.detail ?? 'CUDA device').split(', ')[index] || 'CUDA device', driver: driver || null };
}

/** The machine, the build and the versions a report is about. */
export function describeMachine(device: Device = 'cpu'): BenchMachine {
  const i = info();
  const b = native.buildInfo();
  const isa = native.benchInfo();
  return {
    cpu: { model: cpuModel(), logicalCores: i.hardwareThreads, physicalCores: physicalCores(), isa: isa.isa, fmaLanes: isa.lanes, nativeArch: i.nativeArch },
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    gpu: gpuDescription(device),
    versions: { decoflow: i.version, node: i.node, compiler: b.compiler ?? null, blas: i.blas, gemm: i.gemm, torch: null, python: null },
  };
}

function checkCount(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `bench: options.${name}: expected an integer from ${min} to ${max}, got ${String(v)}`);
  return v;
}

function resolveOptions(o: BenchOptions) {
  if (o === null || typeof o !== 'object') throw decoflowError('ERR_DECOFLOW_ARG_TYPE', 'bench: options: expected an object');
  const device = o.device ?? 'cpu';
  if (typeof device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(device))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `bench: options.device: expected 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(device)}`);
  const budget = o.budget ?? 1;
  if (typeof budget !== 'number' || !(budget >= 0 && budget <= 3600))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `bench: options.budget: expected seconds from 0 to 3600, got ${String(budget)}`);
  if (o.compare !== undefined && o.compare !== null && o.compare !== 'torch')
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `bench: options.compare: expected 'torch', got ${JSON.stringify(o.compare)}`);
  if (o.rows !== undefined && !Array.isArray(o.rows)) throw decoflowError('ERR_DECOFLOW_ARG_TYPE', 'bench: options.rows: expected an array of strings');
  const timing: BenchTiming = {
    warmup: checkCount('warmup', o.warmup ?? 2, 0, 1000),
    minReps: checkCount('minReps', o.minReps ?? 5, 1, 100000),
    maxReps: checkCount('maxReps', o.maxReps ?? 1000, 1, 1000000),
    budgetMs: budget * 1000,
  };
  if (timing.maxReps < timing.minReps) timing.maxReps = timing.minReps;
  return { device: device as Device, budget, timing, rounds: checkCount('rounds', o.rounds ?? 1, 1, 100), compare: o.compare ?? null };
}

/** Why no row can run on `device`, or null when it can. */
function deviceUnavailable(device: Device): string | null {
  if (device === 'cpu') return null;
  const cuda = backends().find((b) => b.name === 'cuda')!;
  if (!cuda.available) return `skipped: device 'cuda' is not available (${cuda.reason})`;
  const index = device.startsWith('cuda:') ? Number(device.slice(5)) : 0;
  return index < cuda.devices ? null : `skipped: device '${device}' does not exist (${cuda.devices} CUDA device(s))`;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the benchmark rows and returns the report. Rows that cannot run (no CUDA device, a CPU-only
 * row on CUDA) are reported as skipped with the reason; a row whose op fails is reported as failed
 * and the others still run. Without PyTorch 2.x, compare: 'torch' runs the rows alone and the report
 * says why there is no peer.
 */
export async function bench(options: BenchOptions = {}): Promise<BenchReport> {
  const t0 = performance.now();
  const o = resolveOptions(options);
  const log = options.log ?? (() => {});
  const threadsBefore = getThreads();
  const threads = options.threads === undefined ? threadsBefore : checkCount('threads', options.threads, 1, 1024);
  const specs = resolveRows(options.rows, { device: o.device, threads });
  const machine = describeMachine(o.device);
  const unavailable = deviceUnavailable(o.device);

  let peer: TorchPeer | null = null;
  let peerInfo: BenchReport['peer'] = null;
  const ceilings: BenchReport['ceilings'] = {};
  const rows: BenchRow[] = [];
  setThreads(threads);
  try {
    if (o.compare === 'torch') {
      const found = findTorchPeer(options.python);
      if (!found.found) {
        peerInfo = { name: 'torch', status: 'none', reason: found.reason };
        log(`bench: --compare torch: ${found.reason}; the rows run without a peer`);
      } else if (unavailable === null) {
        try {
          const started = await TorchPeer.start(found.peer, threads, o.device);
          peer = started.peer;
          peerInfo = { name: 'torch', status: 'ok', version: started.torch, python: found.peer.python, threads: started.threads };
          machine.versions.torch = started.torch;
          machine.versions.python = found.peer.pythonVersion;
          log(`bench: peer PyTorch ${started.torch} (${found.peer.python}), ${started.threads} thread(s)`);
        } catch (e) {
          peerInfo = { name: 'torch', status: 'none', reason: `the peer did not start: ${(e as Error).message}` };
          log(`bench: --compare torch: ${peerInfo.reason}; the rows run without a peer`);
        }
      } else {
        peerInfo = { name: 'torch', status: 'none', reason: unavailable };
      }
    }

    const withPeer = (s: RowSpec) => peer !== null && s.peer !== null && !s.skip && unavailable === null;
    const ceilingSpecs = unavailable === null ? specs.filter((s) => s.group === 'ceiling' && !s.skip) : [];
    const total = specs.reduce((n, s) => n + o.rounds * (1 + Number(withPeer(s))), 0) + ceilingSpecs.length;
    let done = 0;
    for (const spec of specs) {
      const row: BenchRow = {
        id: spec.id,
        group: spec.group,
        title: spec.title,
        device: spec.id === 'ceiling:fma' ? 'cpu' : o.device,
        status: 'ok',
        unit: spec.unit,
        work: spec.work,
        ceiling: spec.ceiling,
        ms: null,
        rate: null,
        share: null,
        peer: null,
      };
      rows.push(row);
      const skip = unavailable ?? (spec.skip ? `skipped: ${spec.skip}` : null);
      if (skip) {
        row.status = 'skipped';
        row.reason = skip.replace(/^skipped: /, '');
        done += o.rounds * (1 + Number(withPeer(spec)));
        continue;
      }
      const rowStart = done;
      const ours: number[][] = [];
      const theirs: number[][] = [];
      let peerError: string | null = null;
      let runner;
      try {
        runner = await spec.setup();
        row.work = runner.work ?? spec.work;
        for (let round = 0; round < o.rounds; round++) {
          ours.push(await measure(runner.run, o.timing));
          options.onProgress?.({ done: ++done, total, row: spec.id, side: 'decoflow' });
          if (withPeer(spec)) {
            if (peerError === null) {
              await pause(20); // let the other side's threads go idle
              try {
                theirs.push(await peer!.run(spec.peer!, o.timing));
              } catch (e) {
                peerError = (e as Error).message;
              }
              await pause(20);
            }
            options.onProgress?.({ done: ++done, total, row: spec.id, side: 'torch' });
          }
        }
      } catch (e) {
        row.status = 'failed';
        const err = e as { message?: string; code?: string };
        row.reason = `${err.message ?? String(e)}${err.code ? ` (${err.code})` : ''}`;
        done = rowStart + o.rounds * (1 + Number(withPeer(spec)));
        continue;
      } finally {
        runner?.dispose();
        releaseCachedMemory();
      }
      row.ms = combineRounds(ours);
      const rateOf = (ms: number) => (row.work === null ? null : row.work / ms / 1e6);
      row.rate = rateOf(row.ms.median);
      if (spec.group === 'ceiling' && row.work !== null) ceilings[spec.id as CeilingId] = rateOf(row.ms.min)!;
      if (withPeer(spec)) {
        let p: BenchPeerResult;
        if (peerError !== null) p = { status: 'failed', reason: peerError };
        else {
          const ms = combineRounds(theirs);
          const rate = rateOf(ms.median);
          p = { status: 'ok', ms, rate, share: null, speedup: ms.median / row.ms.median };
        }
        row.peer = p;
      } else if (peerInfo !== null && spec.group !== 'ceiling') {
        row.peer = { status: 'skipped', reason: peerInfo.status === 'none' ? 'no peer' : 'PyTorch has no counterpart of this row' };
      }
    }

    // The ceilings once more after the rows: on a shared machine either measurement may have been
    // disturbed, and the best call of the two counts. Then every row's share of its ceiling.
    for (const spec of ceilingSpecs) {
      const row = rows.find((r) => r.id === spec.id)!;
      if (row.status === 'ok') {
        const runner = await spec.setup();
        try {
          const best = Math.min(...(await measure(runner.run, o.timing)));
          ceilings[spec.id as CeilingId] = Math.max(ceilings[spec.id as CeilingId]!, (runner.work ?? spec.work!) / best / 1e6);
        } finally {
          runner.dispose();
          releaseCachedMemory();
        }
      }
      options.onProgress?.({ done: ++done, total, row: spec.id, side: 'decoflow' });
    }
    for (const row of rows) {
      const ceiling = row.ceiling ? ceilings[row.ceiling] : undefined;
      if (ceiling === undefined) continue;
      if (row.rate !== null) row.share = row.rate / ceiling;
      if (row.peer?.status === 'ok' && row.peer.rate != null) row.peer.share = row.peer.rate / ceiling;
    }
  } finally {
    peer?.close();
    setThreads(threadsBefore);
  }
  return {
    schema: BENCH_SCHEMA,
    date: new Date().toISOString(),
    machine,
    options: { device: o.device, threads, budget: o.budget, warmup: o.timing.warmup, minReps: o.timing.minReps, maxReps: o.timing.maxReps, rounds: o.rounds, compare: o.compare },
    peer: peerInfo,
    ceilings,
    rows,
    seconds: (performance.now() - t0) / 1000,
  };
}
