// decoflow experiment: FM vs DFM at equal training compute, evaluated with decoflow eval's metrics.
import * as path from 'node:path';
import { runExperiment } from '../experiment';
import { setThreads } from '../runtime';
import { parseArgs, usage, UsageError, type FlagSpec } from './args';
import { EMA_SIGMA_REL_FLAG, emaPowerFromFlags } from './ema';

export const EXPERIMENT_FLAGS: Record<string, FlagSpec> = {
  datasets: { kind: 'string', help: 'comma-separated datasets', default: 'fashion-mnist,shapes' },
  arms: { kind: 'string', help: "arms separated by ';': 'fm' or 'dfm-P[>P2][wW][tM][eL][h|c][x[G]][p][@N1,N2][~TAU][sM][nE]': p_q = [P, 1-P], moving to [P2, 1-P2] over the run; W: the fine stage's loss weight; tM: the fine stage's training times shifted by M (logit units); eL: the coarse stage's logit-normal location while the fine one trains; h: the Haar pyramid, c: the consistent one; x: the fine stage predicts its clean level (xG: with its clamp of 1 - t at G, default 0.05); p: one active stage per sample; N1,N2: sampling steps per stage; TAU: the sampling threshold; sM: the fine stage's steps packed towards the data end by M; nE: the fine stage's stochastic sampling steps with eta E (0 to 1)", default: 'fm;dfm-0.9;dfm-0.5' },
  out: { kind: 'string', help: 'output folder (results.json, curves.png, grids-*.png)', default: 'experiment' },
  model: { kind: 'string', help: 'model size (same for every arm)', default: 'tiny' },
  batch: { kind: 'int', help: 'batch size', default: 32 },
  steps: { kind: 'int', help: 'training steps of every arm', default: 400 },
  'eval-every': { kind: 'int', help: 'steps between evaluations', default: 100 },
  samples: { kind: 'int', help: 'generated images per evaluation', default: 96 },
  'real-count': { kind: 'int', help: 'held-out images in each of the validation set (every evaluation) and the test set (the final weights, once)', default: 1000 },
  nfe: { kind: 'int', help: 'function evaluations per sample (FM [nfe], DFM [3/4, 1/4])', default: 40 },
  lr: { kind: 'number', help: 'learning rate', default: 1e-3 },
  'ema-decay': { kind: 'number', help: 'EMA decay, warmed up (every evaluation samples the EMA and the raw weights)', default: 0.999 },
  'ema-warmup': { kind: 'bool', help: 'warm the EMA up (on; --no-ema-warmup: off)', default: true },
  'ema-power': { kind: 'number', help: 'power-function EMA (EDM2) with this exponent instead of ema-decay; 0: off', default: 0 },
  'ema-sigma-rel': EMA_SIGMA_REL_FLAG,
  'ema-snapshot-every': { kind: 'int', help: "with --ema-power or --ema-sigma-rel: save each arm's EMA every this many steps to its ema-snapshots folder, for decoflow ema (0: never)", default: 0 },
  scale: { kind: 'number', help: 'multiply steps, eval-every and samples by this (e.g. 10 for a longer run)', default: 1 },
  seed: { kind: 'int', help: 'seed', default: 0 },
  results: { kind: 'string', help: 'the results file, relative to --out (runs of different datasets can share --out) or absolute', default: 'results.json' },
  threads: { kind: 'int', help: 'CPU threads (default: all cores)' },
  help: { kind: 'bool', help: 'this text' },
};

export async function experimentCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, EXPERIMENT_FLAGS);
  if (a.help) {
    process.stdout.write(
      usage('experiment', 'Trains flow matching (1 stage, patch 4) and DFM (2 stages, patches 2/4: the same 8x8 tokens) with equal model, batch and steps, evaluates them at the same checkpoints with the same sampling budget, and plots the metrics against training FLOPs.', EXPERIMENT_FLAGS),
    );
    return 0;
  }
  if (a.threads !== undefined) setThreads(a.threads as number);
  const scale = a.scale as number;
  if (!(scale > 0)) throw new UsageError(`--scale: expected a positive number, got ${scale}`);
  for (const k of ['batch', 'steps', 'eval-every', 'samples', 'real-count', 'nfe'])
    if (!((a[k] as number) >= 1)) throw new UsageError(`--${k}: expected a positive integer, got ${a[k]}`);
  const snapshotEvery = a['ema-snapshot-every'] as number;
  if (!(snapshotEvery >= 0)) throw new UsageError(`--ema-snapshot-every: expected an integer >= 0, got ${snapshotEvery}`);
  const emaPower = emaPowerFromFlags(a);
  if (snapshotEvery > 0 && !(emaPower > 0)) throw new UsageError('--ema-snapshot-every: needs a power-function EMA (--ema-power or --ema-sigma-rel)');
  const arms = (a.arms as string).split(/[;\s]+/).filter((s) => s.length > 0);
  const out = a.out as string;
  const t0 = Date.now();
  const results = await runExperiment({
    datasets: (a.datasets as string).split(',').filter((s) => s.length > 0),
    arms,
    out,
    model: a.model as string,
    batch: a.batch as number,
    steps: Math.round((a.steps as number) * scale),
    evalEvery: Math.round((a['eval-every'] as number) * scale),
    samples: Math.round((a.samples as number) * Math.min(scale, 8)),
    realCount: a['real-count'] as number,
    nfe: a.nfe as number,
    lr: a.lr as number,
    emaDecay: a['ema-decay'] as number,
    emaWarmup: a['ema-warmup'] as boolean,
    emaPower,
    emaSnapshotEvery: snapshotEvery > 0 ? Math.round(snapshotEvery * scale) : undefined,
    seed: a.seed as number,
    resultsFile: a.results === 'results.json' ? undefined : (a.results as string),
    log: (line) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${line}\n`),
  });
  process.stderr.write(`decoflow experiment: ${results.length} runs in ${((Date.now() - t0) / 60000).toFixed(1)} min; wrote ${path.resolve(out, a.results as string)}, curves*.png and grids-*.png\n`);
  return 0;
}
