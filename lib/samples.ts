// Sample grids as a user looks at them: one row per class, and the coarse-to-fine previews of a
// few samples side by side.
import { decoflowError } from './errors';
import { saveGrid } from './image';
import type { Model } from './model';
import { Sampler, type SampleOptions } from './sampler';
import { Tensor } from './tensor';

/** Labels for n samples: row r of a `columns`-wide grid shows class r mod numClasses. */
export function gridLabels(n: number, numClasses: number, columns: number): number[] | undefined {
  if (numClasses === 0) return undefined;
  return Array.from({ length: n }, (_, i) => Math.floor(i / columns) % numClasses);
}

/** Stacks tensors of the same [n, C, H, W] shape so that row i holds tensors[0][i], tensors[1][i], ... */
export function interleave(tensors: Tensor[]): Tensor {
  if (tensors.length === 0) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', 'interleave: no tensors');
  const [n, c, h, w] = tensors[0].shape;
  const per = c * h * w;
  const out = new Float32Array(n * tensors.length * per);
  const data = tensors.map((t) => t.dataSync() as Float32Array);
  for (let i = 0; i < n; i++) for (let k = 0; k < tensors.length; k++) out.set(data[k].subarray(i * per, (i + 1) * per), (i * tensors.length + k) * per);
  return Tensor.from(out, [n * tensors.length, c, h, w]);
}

export interface SampleGridOptions extends Omit<SampleOptions, 'n' | 'labels' | 'previews'> {
  /** Grid width (default 8). */
  columns?: number;
  rows?: number;
  /** Also write the previews of the first `previewRows` samples here. */
  previewFile?: string;
  previewRows?: number;
  scale?: number;
}

export async function writeSampleGrid(model: Model, file: string, options: SampleGridOptions = {}): Promise<void> {
  const { columns = 8, rows = 8, previewFile, previewRows = 8, scale = 3, ...rest } = options;
  const n = columns * rows;
  const r = await new Sampler(model).sample({ ...rest, n, labels: gridLabels(n, model.config.numClasses, columns), previews: !!previewFile });
  try {
    await saveGrid(file, r.images, { columns, scale });
    if (previewFile) {
      // rows: samples; columns: stage 1, stages 1-2, ..., all stages (the final image)
      const pick = (t: Tensor) => {
        const [, c, h, w] = t.shape;
        const k = Math.min(previewRows, n);
        return Tensor.from((t.dataSync() as Float32Array).slice(0, k * c * h * w), [k, c, h, w]);
      };
      const picked = r.previews.map(pick);
      const stacked = interleave(picked);
      await saveGrid(previewFile, stacked, { columns: picked.length, scale });
      for (const t of [...picked, stacked]) t.dispose();
    }
  } finally {
    for (const t of [r.images, ...r.levels, ...r.previews, ...r.intermediates]) t.dispose();
  }
}
