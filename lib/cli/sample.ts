// decoflow sample: checkpoint -> a PNG grid (or --count individual PNGs in a folder).
import * as path from 'node:path';
import { saveGrid, saveImages } from '../image';
import { Model } from '../model';
import { setThreads } from '../runtime';
import { Sampler, samplerDefaults, type Solver } from '../sampler';
import { writeSampleGrid } from '../samples';
import { DEVICE_FLAGS, deviceOptions, parseArgs, usage, UsageError, type FlagSpec } from './args';
import { ProgressBar } from './progress';

const DEFAULTS = samplerDefaults(2);  // shown in the help; the sampler applies its own

export const SAMPLE_FLAGS: Record<string, FlagSpec> = {
  checkpoint: { kind: 'string', help: 'a checkpoint written by decoflow train' },
  out: { kind: 'string', help: 'the PNG grid, or with --count the folder of images', default: 'samples.png' },
  count: { kind: 'int', help: 'write this many individual images into the folder --out' },
  columns: { kind: 'int', help: 'grid width', default: 8 },
  rows: { kind: 'int', help: 'grid height', default: 8 },
  'steps-per-stage': { kind: 'intlist', help: `steps of each phase (default ${DEFAULTS.stepsPerStage.join(',')} for 2 stages)` },
  thresholds: { kind: 'list', help: `tau of every stage but the last (default ${DEFAULTS.thresholds.join(',')})` },
  'stage-time-shifts': { kind: 'list', help: 'per stage, steps even in logit(t) - M (default: 0 each, even in t; > 0 packs them towards the data end)' },
  'stage-eta': { kind: 'list', help: "per stage, the noise each Euler step re-draws, 0 to 1 (default: 0 each, the ODE; 1: ancestral sampling)" },
  solver: { kind: 'string', help: "'euler', 'heun' or 'midpoint'", default: 'euler' },
  cfg: { kind: 'number', help: 'classifier-free guidance scale (1 = none)', default: 1 },
  labels: { kind: 'intlist', help: 'class of each image (default: one class per row, or cycling)' },
  seed: { kind: 'int', help: 'noise seed', default: 0 },
  batch: { kind: 'int', help: 'images per native call with --count', default: 64 },
  previews: { kind: 'bool', help: 'also write the coarse-to-fine previews beside the grid' },
  ema: { kind: 'bool', help: 'use the EMA weights (--no-ema: the raw weights)', default: true },
  threads: { kind: 'int', help: 'CPU threads (default: all cores)' },
  ...DEVICE_FLAGS,
  help: { kind: 'bool', help: 'this text' },
};

export async function sample(argv: string[]): Promise<number> {
  const a = parseArgs(argv, SAMPLE_FLAGS);
  if (a.help) {
    process.stdout.write(usage('sample', 'Generates images from a checkpoint.', SAMPLE_FLAGS));
    return 0;
  }
  if (!a.checkpoint) throw new UsageError('--checkpoint is required');
  if (a.threads !== undefined) setThreads(a.threads as number);
  const model = Model.load(a.checkpoint as string, deviceOptions(a));
  const common = {
    stepsPerStage: a['steps-per-stage'] as number[] | undefined,
    thresholds: a.thresholds as number[] | undefined,
    stageTimeShifts: a['stage-time-shifts'] as number[] | undefined,
    stageEta: a['stage-eta'] as number[] | undefined,
    solver: a.solver as Solver,
    cfg: a.cfg as number,
    ema: a.ema as boolean,
  };
  const out = a.out as string;
  try {
    if (a.count !== undefined) {
      const count = a.count as number;
      const batch = a.batch as number;
      if (!(count >= 1 && batch >= 1)) throw new UsageError('--count and --batch: expected positive integers');
      const labels = a.labels as number[] | undefined;
      const bar = new ProgressBar(count);
      const sampler = new Sampler(model);
      for (let start = 0; start < count; start += batch) {
        const n = Math.min(batch, count - start);
        const ls = model.config.numClasses > 0 ? Array.from({ length: n }, (_, i) => (labels ? labels[(start + i) % labels.length] : (start + i) % model.config.numClasses)) : undefined;
        const r = await sampler.sample({ ...common, n, labels: ls, seed: (a.seed as number) + start });
        await saveImages(out, r.images, { start });
        for (const t of [r.images, ...r.levels]) t.dispose();
        bar.update(start + n, {});
      }
      process.stderr.write(`decoflow sample: wrote ${count} images to ${out}\n`);
    } else {
      const columns = a.columns as number;
      const rows = a.rows as number;
      const labels = a.labels as number[] | undefined;
      if (labels && labels.length !== columns * rows) throw new UsageError(`--labels: expected ${columns * rows} labels (columns x rows), got ${labels.length}`);
      const previewFile = a.previews ? out.replace(/(\.png)?$/i, '-previews.png') : undefined;
      if (labels) {
        const r = await new Sampler(model).sample({ ...common, n: labels.length, labels, seed: a.seed as number });
        await saveGrid(out, r.images, { columns, scale: 3 });
      } else {
        await writeSampleGrid(model, out, { ...common, columns, rows, seed: a.seed as number, previewFile });
      }
      process.stderr.write(`decoflow sample: wrote ${out}${previewFile ? ` and ${path.basename(previewFile)}` : ''}\n`);
    }
  } finally {
    model.dispose();
  }
  return 0;
}
