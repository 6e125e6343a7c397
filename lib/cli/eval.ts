// decoflow eval: generated images vs real ones -> a table on stdout and (with --json) a JSON report.
import { evaluate, formatEvalTable, loadImageSet, type EvalFeature, type EvalOptions, type EvalReport } from '../eval';
import { writeFileAtomic } from '../image';
import { setThreads } from '../runtime';
import { parseArgs, usage, UsageError, type FlagSpec } from './args';
import { ProgressBar } from './progress';

const SOURCES = "a folder of images, a PNG grid (with --tile), a .safetensors or .npy file, 'shapes' or 'fashion-mnist[:DIR]'";

export const EVAL_FLAGS: Record<string, FlagSpec> = {
  generated: { kind: 'string', help: `the generated images: ${SOURCES}` },
  real: { kind: 'string', help: "the real images, same kinds (datasets: the test split, or seed 1 for 'shapes')", default: 'fashion-mnist' },
  count: { kind: 'int', help: 'use at most this many generated images' },
  'real-count': { kind: 'int', help: 'use at most this many real images (default: as many as generated, at least 1000)' },
  'real-offset': { kind: 'int', help: 'skip this many real images first', default: 0 },
  split: { kind: 'string', help: "dataset split of a dataset source: 'test' or 'train'", default: 'test' },
  tile: { kind: 'int', help: 'tile size in pixels when --generated (or --real) is a PNG grid' },
  padding: { kind: 'int', help: 'pixels between tiles of a grid (default: found from its size)' },
  'image-size': { kind: 'int', help: 'resize folder and grid images to this size (default: their own)' },
  frechet: { kind: 'string', help: 'features of the Frechet distances, comma-separated: pix8, pix16, bands (none: empty)', default: 'pix8,pix16,bands' },
  swd: { kind: 'bool', help: 'compute the sliced Wasserstein distance (--no-swd: skip)', default: true },
  'swd-descriptors': { kind: 'int', help: '7x7 neighbourhoods per image and pyramid level', default: 64 },
  'swd-projections': { kind: 'int', help: 'random directions of the sliced distance', default: 512 },
  pr: { kind: 'bool', help: 'compute precision and recall (--no-pr: skip)', default: true },
  'pr-feature': { kind: 'string', help: 'feature space of precision/recall: pix8, pix16 or bands', default: 'pix16' },
  'pr-k': { kind: 'int', help: 'k of the k-nearest-neighbour radii', default: 3 },
  seed: { kind: 'int', help: 'seed of the SWD patches and directions', default: 0 },
  json: { kind: 'string', help: 'also write the report as JSON to this file' },
  threads: { kind: 'int', help: 'CPU threads (default: all cores)' },
  help: { kind: 'bool', help: 'this text' },
};

const SUMMARY = `Compares generated images with real ones, without any pretrained network:
  SWD      multi-scale sliced Wasserstein distance x 1000 (Karras et al. 2018) on 7x7 patches of
           each Laplacian pyramid level (finest first) and its mean;
  FD       Frechet distances between Gaussian fits of pixel features: pix8 / pix16 (the image
           box-averaged to 8x8 / 16x16), bands (RMS of each pyramid detail level in 4x4 cells);
  P / R    k-NN precision and recall (Kynkaanniemi et al. 2019) in one of those feature spaces.
Lower distances are better. The numbers depend on the set sizes: compare evaluations of equal sizes.`;

export async function evalCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, EVAL_FLAGS);
  if (a.help) {
    process.stdout.write(usage('eval', SUMMARY, EVAL_FLAGS));
    return 0;
  }
  if (!a.generated) throw new UsageError('--generated is required');
  for (const k of ['count', 'real-count', 'tile', 'image-size', 'swd-descriptors', 'swd-projections', 'pr-k'])
    if (a[k] !== undefined && !((a[k] as number) >= 1)) throw new UsageError(`--${k}: expected a positive integer, got ${a[k]}`);
  if (a.split !== 'test' && a.split !== 'train') throw new UsageError(`--split: expected 'test' or 'train', got '${a.split}'`);
  const frechet = (a.frechet as string).split(',').map((s) => s.trim()).filter((s) => s.length > 0) as EvalFeature[];
  for (const f of [...frechet, a['pr-feature'] as string])
    if (!['pix8', 'pix16', 'bands'].includes(f)) throw new UsageError(`--frechet / --pr-feature: expected pix8, pix16 or bands, got '${f}'`);
  if (a.threads !== undefined) setThreads(a.threads as number);

  const common = { tile: a.tile as number | undefined, padding: a.padding as number | undefined, imageSize: a['image-size'] as number | undefined, split: a.split as 'test' | 'train' };
  const generated = await loadImageSet(a.generated as string, { ...common, limit: a.count as number | undefined });
  const [n, channels, size] = generated.shape;
  const realCount = (a['real-count'] as number | undefined) ?? Math.max(n, 1000);
  const real = await loadImageSet(a.real as string, {
    ...common,
    imageSize: size,
    channels: channels as 1 | 3,
    limit: realCount,
    offset: a['real-offset'] as number,
  });
  const options: Omit<EvalOptions, 'onProgress'> = {
    seed: a.seed as number,
    swd: a.swd as boolean,
    swdDescriptors: a['swd-descriptors'] as number,
    swdProjections: a['swd-projections'] as number,
    frechet,
    precisionRecall: a.pr as boolean,
    prFeature: a['pr-feature'] as EvalFeature,
    prK: a['pr-k'] as number,
  };
  process.stderr.write(`decoflow eval: ${n} generated vs ${real.shape[0]} real images (${channels}x${size}x${size})\n`);
  const parts = Number(options.swd) + frechet.length + Number(options.precisionRecall);
  const bar = new ProgressBar(parts);
  try {
    const result = await evaluate(generated, real, { ...options, onProgress: (p) => bar.update(p.step, {}) });
    const report: EvalReport = { ...result, generated: n, real: real.shape[0], imageShape: [channels, size, size], options };
    process.stdout.write(formatEvalTable([{ name: a.generated as string, result }]));
    if (a.json) {
      await writeFileAtomic(a.json as string, Buffer.from(JSON.stringify({ ...report, sources: { generated: a.generated, real: a.real } }, null, 2)));
      process.stderr.write(`decoflow eval: wrote ${a.json}\n`);
    }
  } finally {
    generated.dispose();
    real.dispose();
  }
  return 0;
}
