// Model sizes by name (DiT's S/B/L/XL, plus small ones for the CPU) and the per-stage patch sizes
// that give every stage the same token grid.
import { decoflowError } from './errors';
import type { ModelConfig } from './model';

export const MODEL_SIZES: Record<string, { hidden: number; depth: number; heads: number }> = {
  tiny: { hidden: 128, depth: 4, heads: 4 },
  small: { hidden: 256, depth: 6, heads: 4 },
  S: { hidden: 384, depth: 12, heads: 6 },
  B: { hidden: 768, depth: 12, heads: 12 },
  L: { hidden: 1024, depth: 24, heads: 16 },
  XL: { hidden: 1152, depth: 28, heads: 16 },
};

/** Patch size of each stage so that every stage gives a grid x grid token map. */
export function patchSizesFor(imageSize: number, stages: number, grid: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < stages; s++) {
    const size = imageSize / 2 ** (stages - 1 - s);
    const p = size / grid;
    if (!Number.isInteger(size) || !Number.isInteger(p) || p < 1)
      throw decoflowError(
        'ERR_DECOFLOW_CONFIG',
        `a ${grid}x${grid} token grid does not fit stage ${s + 1} (${size} px) of a ${stages}-stage pyramid of ${imageSize} px images`,
      );
    out.push(p);
  }
  return out;
}

export function modelConfig(options: {
  size: string;
  stages: number;
  channels: number;
  imageSize: number;
  numClasses: number;
  grid?: number;
  stageEmbedding?: boolean;
  /** Per stage, 'v' (velocity, the default) or 'x' (clean level): ModelConfig.stagePredictions. */
  stagePredictions?: ('v' | 'x')[];
  /** The 'x' stages' clamp of 1 - t: ModelConfig.cleanMinGap. */
  cleanMinGap?: number;
  /** The pyramid (default Laplacian): ModelConfig.decomposition. */
  decomposition?: 'laplacian' | 'haar' | 'consistent';
}): ModelConfig {
  const preset = MODEL_SIZES[options.size];
  if (!preset)
    throw decoflowError('ERR_DECOFLOW_CONFIG', `model: expected one of ${Object.keys(MODEL_SIZES).join(', ')}, got '${options.size}'`);
  const grid = options.grid ?? 8;
  return {
    stages: options.stages,
    channels: options.channels,
    height: options.imageSize,
    width: options.imageSize,
    patchSizes: patchSizesFor(options.imageSize, options.stages, grid),
    ...preset,
    numClasses: options.numClasses,
    stageEmbedding: options.stageEmbedding ?? options.stages > 1,
    ...(options.stagePredictions ? { stagePredictions: options.stagePredictions } : {}),
    ...(options.cleanMinGap !== undefined ? { cleanMinGap: options.cleanMinGap } : {}),
    ...(options.decomposition && options.decomposition !== 'laplacian' ? { decomposition: options.decomposition } : {}),
  };
}
