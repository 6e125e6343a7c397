// decoflow bench [rows...]: the benchmark harness on the command line (lib/bench.ts). Prints the
// rows as a table, writes them with the machine's description as JSON (--json) and, with
// --baseline, exits 1 when a row is slower than an earlier run's by more than --tolerance.
import * as fs from 'node:fs';
import { bench, type BenchOptions } from '../bench';
import { compareBaseline, formatBaselineComparison, formatBenchHeader, formatBenchTable, validateBenchReport, type BenchReport } from '../bench-report';
import { BENCH_GROUPS, resolveRows } from '../bench-rows';
import { writeFileAtomic } from '../image';
import { getThreads } from '../runtime';
import type { Device } from '../tensor';
import { parseArgs, usage, UsageError, type FlagSpec } from './args';
import { ProgressBar } from './progress';

export const BENCH_FLAGS: Record<string, FlagSpec> = {
  device: { kind: 'string', help: "where the rows run: 'cpu', 'cuda' or 'cuda:N'", default: 'cpu' },
  threads: { kind: 'int', help: 'CPU threads of decoflow and of the peer (default: all cores)' },
  budget: { kind: 'number', help: 'seconds of timed calls per row and side', default: 1 },
  warmup: { kind: 'int', help: 'untimed calls before timing', default: 2 },
  'min-reps': { kind: 'int', help: 'timed calls at least', default: 5 },
  'max-reps': { kind: 'int', help: 'timed calls at most', default: 1000 },
  rounds: { kind: 'int', help: 'decoflow and the peer take turns this many times per row (best median kept)', default: 1 },
  quick: { kind: 'bool', help: 'a short run: --budget 0.2 --warmup 1 --min-reps 3 unless given' },
  compare: { kind: 'string', help: "also run every row in this peer: 'torch' (PyTorch 2.x)" },
  python: { kind: 'string', help: 'the Python of the peer (default: $DECOFLOW_TORCH_PYTHON, python3, python)' },
  json: { kind: 'string', help: 'write every row and the machine description as JSON to this file' },
  baseline: { kind: 'string', help: 'compare with an earlier --json file; exit 1 if a row got slower' },
  tolerance: { kind: 'string', help: 'how much slower than the baseline a row may be, in percent', default: '10%' },
  list: { kind: 'bool', help: 'list the rows that would run and exit' },
  progress: { kind: 'bool', help: 'a progress bar on stderr (--no-progress: none)', default: true },
  help: { kind: 'bool', help: 'this text' },
};

const SUMMARY = `Times decoflow's kernels and model on this machine. The machine's own ceilings run first (CPU:
the FMA peak of the threads in use and the memory copy bandwidth; CUDA: device-to-device copy and a
cuBLASLt bf16 GEMM), then each row: warm-up, then timed calls until the budget is spent; the median,
min and max ms, GFLOP/s (FlashAttention's count for attention, counted FLOPs for the model) or GB/s,
and the share of the measured ceiling. --compare torch runs each row in PyTorch 2.x right after, with
the same threads and device, and prints decoflow's speed-up over it ('x torch').

rows: group names (${BENCH_GROUPS.join(', ')}; default: all but eval) or row ids:
  gemm:N | gemm:MxNxK[:blas|builtin]              matmul f32 (CPU: OpenBLAS or the built-in kernel)
  attention:fwd|fwdbwd:BxHxNxD[:causal]           flash attention (f32 CPU, bf16 CUDA)
  pyramid:laplacian|haar|consistent:BxCxHxW:STAGES[:out]  decompose + recompose (:out: into given tensors)
  train|sample:SIZE[:STAGES][:bN][:compile]       DiT training step / sampling (tiny, small, S, B, L, XL)
  eval:frechet:D | eval:swd:N | eval:pr:N         decoflow eval's metrics
  ceiling:fma | ceiling:copy | ceiling:gemm-bf16  the ceilings (always run)
Exit codes: 0 ok, 1 a row failed or got slower than --baseline, 2 bad usage.`;

/** Splits the row names from the options (an option's value is never a row). */
function splitRows(argv: string[]): { rows: string[]; flags: string[] } {
  const rows: string[] = [];
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      rows.push(a);
      continue;
    }
    flags.push(a);
    const name = a.slice(2);
    const spec = BENCH_FLAGS[name];
    if (!name.includes('=') && spec && spec.kind !== 'bool' && i + 1 < argv.length) flags.push(argv[++i]);
  }
  return { rows, flags };
}

/** '10%' or '10' -> 0.1. */
export function parseTolerance(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const v = m ? Number(m[1]) : NaN;
  if (!(v >= 0 && v <= 1000)) throw new UsageError(`--tolerance: expected a percentage like 10 or 10%, got '${text}'`);
  return v / 100;
}

function readBaseline(file: string): BenchReport {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--baseline: cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return validateBenchReport(JSON.parse(text));
  } catch (e) {
    throw new UsageError(`--baseline: ${file} is not a decoflow bench report: ${(e as Error).message}`);
  }
}

export async function benchCommand(argv: string[]): Promise<number> {
  const { rows, flags } = splitRows(argv);
  const a = parseArgs(flags, BENCH_FLAGS);
  if (a.help) {
    process.stdout.write(usage('bench [rows...]', SUMMARY, BENCH_FLAGS));
    return 0;
  }
  const device = a.device as string;
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new UsageError(`--device: expected 'cpu', 'cuda' or 'cuda:N', got '${device}'`);
  if (a.compare !== undefined && a.compare !== 'torch') throw new UsageError(`--compare: expected 'torch', got '${a.compare}'`);
  if (a.python !== undefined && a.compare === undefined) throw new UsageError('--python is the peer of --compare torch: give --compare torch too');
  const explicit = (k: string) => flags.some((f) => f === `--${k}` || f.startsWith(`--${k}=`));
  const pick = (k: string, quick: number) => (a.quick && !explicit(k) ? quick : (a[k] as number));
  const options: BenchOptions = {
    rows,
    device: device as Device,
    budget: pick('budget', 0.2),
    warmup: pick('warmup', 1),
    minReps: pick('min-reps', 3),
    maxReps: a['max-reps'] as number,
    rounds: a.rounds as number,
    compare: (a.compare as 'torch' | undefined) ?? null,
    python: a.python as string | undefined,
  };
  if (!(options.budget! >= 0)) throw new UsageError(`--budget: expected seconds >= 0, got ${options.budget}`);
  for (const k of ['warmup', 'min-reps', 'max-reps', 'rounds', 'threads'])
    if (a[k] !== undefined && !((a[k] as number) >= (k === 'warmup' ? 0 : 1))) throw new UsageError(`--${k}: expected ${k === 'warmup' ? 'an integer >= 0' : 'a positive integer'}, got ${a[k]}`);
  const tolerance = parseTolerance(a.tolerance as string);
  const baseline = a.baseline ? readBaseline(a.baseline as string) : null;
  options.threads = a.threads as number | undefined;
  let specs;
  try {
    specs = resolveRows(rows, { device: options.device!, threads: options.threads ?? getThreads() });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^bench: /, ''));
  }
  if (a.list) {
    const width = Math.max(...specs.map((s) => s.id.length));
    for (const s of specs) process.stdout.write(`${s.id.padEnd(width)}  ${s.title}${s.skip ? ` (skipped: ${s.skip})` : ''}\n`);
    return 0;
  }

  let bar: ProgressBar | null = null;
  const report = await bench({
    ...options,
    log: (line) => process.stderr.write(`decoflow ${line}\n`),
    onProgress: a.progress
      ? (p) => {
          bar ??= new ProgressBar(p.total);
          bar.update(p.done, { row: `${p.row}${p.side === 'torch' ? ' (torch)' : ''}` });
        }
      : undefined,
  });
  process.stdout.write(formatBenchHeader(report) + '\n' + formatBenchTable(report));
  if (a.json) {
    await writeFileAtomic(a.json as string, Buffer.from(JSON.stringify(report, null, 2) + '\n'));
    process.stderr.write(`decoflow bench: wrote ${a.json}\n`);
  }
  let code = report.rows.some((r) => r.status === 'failed') ? 1 : 0;
  if (baseline) {
    const c = compareBaseline(report, baseline, tolerance);
    process.stdout.write('\n' + formatBaselineComparison(c));
    if (!c.ok) code = 1;
  }
  return code;
}
