// Generation quality without a pretrained network: compares a set of generated images with a set of
// real ones (both f32 [N, C, H, W] in [-1, 1]) in native code, off the event loop.
//
//   swd        Karras et al.'s multi-scale sliced Wasserstein distance (x 1000) on 7x7 patches of
//              every level of decoflow's Laplacian pyramid, per level (finest first) and its mean.
//   frechet    Frechet distances between Gaussian fits of features computed from the pixels:
//              'pix8' / 'pix16' (the image box-averaged to 8x8 / 16x16, all channels) and 'bands'
//              (RMS of each Laplacian detail level in a 4x4 grid of cells, per channel).
//   precision, recall   Kynkaanniemi et al. (2019) k-NN precision and recall in one of those
//              feature spaces (default 'pix16', k = 3).
// Lower distances are better; precision and recall are fractions in [0, 1], higher is better.
// Results depend only on the images and the seed. See native/eval/metrics.h for the definitions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Metadata, Stats } from 'sharp';
import { sharp } from './sharp';
import type { NativeProgress } from '../types/native';
import { loadDataset } from './data';
import { decoflowError } from './errors';
import { readImage } from './image';
import { native } from './native';
import { readSafetensors } from './safetensors';
import { nativeOf, Tensor } from './tensor';

export type EvalFeature = 'pix8' | 'pix16' | 'bands';

export interface EvalOptions {
  /** Seed of the SWD's patch positions and projections (default 0). */
  seed?: number;
  /** Compute the SWD (default true). */
  swd?: boolean;
  /** Pyramid levels (default: down to the last level of at least 8 px). */
  swdLevels?: number;
  /** Neighbourhood side (default 7). */
  swdPatch?: number;
  /** Neighbourhoods per image and level (default 64; Karras et al. used 128). */
  swdDescriptors?: number;
  /** Random directions (default 512 = Karras's 4 x 128). */
  swdProjections?: number;
  /** Features of the Frechet distances (default all three; [] for none). */
  frechet?: EvalFeature[];
  /** Compute precision and recall (default true). */
  precisionRecall?: boolean;
  prFeature?: EvalFeature;
  prK?: number;
  onProgress?: (p: NativeProgress) => void;
}

export interface EvalResult {
  swd?: { resolutions: number[]; levels: number[]; mean: number };
  frechet: Partial<Record<EvalFeature, number>>;
  /**
   * With the 'bands' distance: its features split by pyramid detail level, finest first: each
   * level's own Frechet distance and its mean cell RMS in both sets (generated above real: too much
   * detail at that scale, e.g. speckle; below: too little, blur).
   */
  bandLevels?: { resolutions: number[]; frechet: number[]; rmsGenerated: number[]; rmsReal: number[] };
  precision?: number;
  recall?: number;
}

export interface EvalReport extends EvalResult {
  generated: number;
  real: number;
  imageShape: number[];
  options: Omit<EvalOptions, 'onProgress'>;
}

/** The metrics of `generated` against `real` (same channels and size; the counts may differ). */
export async function evaluate(generated: Tensor, real: Tensor, options: EvalOptions = {}): Promise<EvalResult> {
  return native.evalMetrics(nativeOf(generated, 'evaluate: generated'), nativeOf(real, 'evaluate: real'), options) as Promise<EvalResult>;
}

export function evaluateSync(generated: Tensor, real: Tensor, options: Omit<EvalOptions, 'onProgress'> = {}): EvalResult {
  return native.evalMetricsSync(nativeOf(generated, 'evaluateSync: generated'), nativeOf(real, 'evaluateSync: real'), options) as EvalResult;
}

/** The [N, D] features behind the Frechet distances and precision/recall. */
export function evalFeatures(images: Tensor, kind: EvalFeature): Tensor {
  return new Tensor(native.evalFeaturesSync(nativeOf(images, 'evalFeatures: images'), kind));
}

/**
 * The Frechet distance between N(meanA, covA) and N(meanB, covB) (f32 [D] and [D, D], computed in
 * float64): |mA - mB|^2 + tr A + tr B - 2 tr sqrt(A^1/2 B A^1/2).
 */
export function frechetDistance(meanA: Tensor, covA: Tensor, meanB: Tensor, covB: Tensor): number {
  return native.evalFrechetSync(
    nativeOf(meanA, 'frechetDistance: meanA'),
    nativeOf(covA, 'frechetDistance: covA'),
    nativeOf(meanB, 'frechetDistance: meanB'),
    nativeOf(covB, 'frechetDistance: covB'),
  );
}

/** Eigenvalues (ascending) and eigenvectors (row i belongs to value i) of a symmetric f32 matrix, in float64. */
export function symmetricEigen(matrix: Tensor): { values: Float64Array; vectors: Float64Array } {
  return native.evalEigenSync(nativeOf(matrix, 'symmetricEigen: matrix'));
}

// ---------------------------------------------------------------------------------------------
// Image sets from files, folders and datasets.

export interface ImageSetOptions {
  /** Side of the images (default: that of the source; folders and grids are resized to it). */
  imageSize?: number;
  /** 1 or 3 (default: that of the source). */
  channels?: 1 | 3;
  /** At most this many images (default all). */
  limit?: number;
  /** Skip this many images first (datasets, tensors, folders in name order). */
  offset?: number;
  /** Tile side in pixels for a PNG grid (a grid is a .png read with a tile size). */
  tile?: number;
  /** Pixels between tiles and around the grid (default: found from the image size). */
  padding?: number;
  /** The tensor to read from a safetensors file (default: the only one, or 'images'). */
  tensor?: string;
  /** Dataset split for 'fashion-mnist' (default 'test', the images a model was not trained on). */
  split?: 'train' | 'test';
}

const IMAGE_EXT = /\.(png|jpe?g|webp|gif|tiff?|avif)$/i;

function slice(images: Float32Array, per: number, offset: number, limit: number | undefined): { data: Float32Array; n: number } {
  const n = images.length / per;
  const start = Math.min(n, offset);
  const end = Math.min(n, limit === undefined ? n : start + limit);
  return { data: images.subarray(start * per, end * per), n: end - start };
}

/** Reads a .npy array: f32 or f64 [N, C, H, W] in [-1, 1], or u8 [N, H, W] / [N, H, W, C] in 0..255. */
export function readNpy(file: string): { data: Float32Array; shape: number[] } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw decoflowError('ERR_DECOFLOW_IO', `cannot read ${file}: ${(e as Error).message}`);
  }
  return native.npyImages(bytes, file);
}

async function readGrid(file: string, o: ImageSetOptions): Promise<{ data: Float32Array; n: number; channels: number; size: number }> {
  const tile = o.tile!;
  if (!Number.isInteger(tile) || tile < 1) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `grid: tile: expected a positive integer, got ${tile}`);
  let meta: Metadata;
  try {
    meta = await sharp()(file).metadata();
  } catch (e) {
    throw decoflowError('ERR_DECOFLOW_FORMAT', `cannot decode image ${file}: ${(e as Error).message}`);
  }
  const layout = native.gridLayout(meta.width ?? 0, meta.height ?? 0, tile, o.padding ?? -1, o.offset ?? 0, o.limit ?? -1);
  const channels = o.channels ?? (meta.channels === 1 || meta.channels === 2 || isGrey(await sharp()(file).stats()) ? 1 : 3);
  const size = o.imageSize ?? tile;
  const n = layout.count;
  const per = channels * size * size;
  const out = new Float32Array(n * per);
  for (let k = 0; k < n; k++) {
    const [left, top] = layout.origins.slice(2 * k, 2 * k + 2);
    let img = sharp()(file).extract({ left, top, width: tile, height: tile }).removeAlpha();
    // an integer reduction (e.g. a grid drawn at scale 3) is a box average, exact for upscaled tiles
    const box = tile % size === 0;
    if (!box) img = img.resize(size, size, { kernel: 'lanczos3' });
    img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
    out.set(native.pixelsToPlanar(await img.raw().toBuffer(), box ? tile : size, channels, size), k * per);
  }
  return { data: out, n, channels, size };
}

function isGrey(stats: Stats): boolean {
  // a grid written from 1-channel images is stored as RGB with equal channels
  return stats.channels.length >= 3 && stats.channels[0].sum === stats.channels[1].sum && stats.channels[1].sum === stats.channels[2].sum;
}

async function readFolder(dir: string, o: ImageSetOptions): Promise<{ data: Float32Array; n: number; channels: number; size: number }> {
  const files = (await fs.promises.readdir(dir)).filter((f) => IMAGE_EXT.test(f)).sort();
  const chosen = files.slice(o.offset ?? 0, o.limit === undefined ? undefined : (o.offset ?? 0) + o.limit).map((f) => path.join(dir, f));
  if (chosen.length === 0) throw decoflowError('ERR_DECOFLOW_IO', `no images (png, jpg, webp, ...) in ${dir}`);
  let meta: Metadata;
  try {
    meta = await sharp()(chosen[0]).metadata();
  } catch (e) {
    throw decoflowError('ERR_DECOFLOW_FORMAT', `cannot decode image ${chosen[0]}: ${(e as Error).message}`);
  }
  const size = o.imageSize ?? meta.width!;
  const channels = o.channels ?? (meta.channels === 1 || meta.channels === 2 || isGrey(await sharp()(chosen[0]).stats()) ? 1 : 3);
  const per = channels * size * size;
  const out = new Float32Array(chosen.length * per);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < chosen.length) {
      const i = next++;
      out.set(await readImage(chosen[i], size, channels), i * per);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { data: out, n: chosen.length, channels, size };
}

/**
 * Loads a set of images as f32 [N, C, S, S] in [-1, 1] from:
 *   a folder of images (PNG, JPEG, ...; sorted by name), a PNG grid (with `tile`), a .safetensors
 *   file (f32 [N, C, H, W] in [-1, 1]), a .npy file (see readNpy), or a dataset name ('shapes',
 *   'fashion-mnist[:DIR]').
 */
export async function loadImageSet(spec: string, options: ImageSetOptions = {}): Promise<Tensor> {
  const o = options;
  const offset = o.offset ?? 0;
  const finish = (data: Float32Array, n: number, c: number, h: number, w: number) => {
    if (n === 0) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${spec}: no images (offset ${offset})`);
    if (o.channels !== undefined && o.channels !== c)
      throw decoflowError('ERR_DECOFLOW_SHAPE', `${spec}: expected ${o.channels}-channel images, got ${c}`);
    if (o.imageSize !== undefined && (o.imageSize !== h || o.imageSize !== w))
      throw decoflowError('ERR_DECOFLOW_SHAPE', `${spec}: expected ${o.imageSize}x${o.imageSize} images, got ${h}x${w}`);
    return Tensor.from(data, [n, c, h, w]);
  };
  if (fs.existsSync(spec) && fs.statSync(spec).isDirectory()) {
    const r = await readFolder(spec, o);
    return finish(r.data, r.n, r.channels, r.size, r.size);
  }
  if (/\.npy$/i.test(spec)) {
    const { data, shape } = readNpy(spec);
    const [, c, h, w] = shape;
    const s = slice(data, c * h * w, offset, o.limit);
    return finish(s.data, s.n, c, h, w);
  }
  if (/\.safetensors$/i.test(spec)) {
    const { tensors } = readSafetensors(spec);
    const names = Object.keys(tensors);
    const name = o.tensor ?? (names.length === 1 ? names[0] : 'images');
    const t = tensors[name];
    if (!t) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${spec}: no tensor '${name}' (has ${names.join(', ')}); pass tensor`);
    try {
      if (t.dtype !== 'f32' || t.shape.length !== 4)
        throw decoflowError('ERR_DECOFLOW_SHAPE', `${spec}: ${name}: expected f32 [N, C, H, W], got ${t.dtype} [${t.shape.join(', ')}]`);
      const [, c, h, w] = t.shape;
      const s = slice(t.dataSync() as Float32Array, c * h * w, offset, o.limit);
      return finish(s.data, s.n, c, h, w);
    } finally {
      for (const x of Object.values(tensors)) x.dispose();
    }
  }
  if (IMAGE_EXT.test(spec)) {
    if (o.tile === undefined) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${spec}: a single image is read as a grid: pass tile (the tile size in pixels)`);
    if (!fs.existsSync(spec)) throw decoflowError('ERR_DECOFLOW_IO', `${spec}: no such file`);
    const r = await readGrid(spec, o);
    return finish(r.data, r.n, r.channels, r.size, r.size);
  }
  if (spec === 'shapes' || spec === 'fashion-mnist' || spec.startsWith('fashion-mnist:')) {
    const split = o.split ?? 'test';
    const limit = o.limit ?? 10000;
    const ds =
      spec === 'shapes'
        ? await loadDataset('shapes', { imageSize: o.imageSize, seed: split === 'test' ? 1 : 0 })
        : await (await import('./data')).fashionMnist({ dir: spec.includes(':') ? spec.slice(spec.indexOf(':') + 1) : undefined, split, imageSize: o.imageSize, limit: offset + limit });
    try {
      const end = Math.min(ds.size, offset + limit);
      if (end <= offset) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${spec}: offset ${offset} is past its ${ds.size} images`);
      const b = await ds.batch(Array.from({ length: end - offset }, (_, i) => offset + i));
      b.labels.dispose();
      if (o.channels !== undefined && o.channels !== ds.channels) {
        b.images.dispose();
        throw decoflowError('ERR_DECOFLOW_SHAPE', `${spec}: has ${ds.channels}-channel images, expected ${o.channels}`);
      }
      return b.images;
    } finally {
      ds.dispose();
    }
  }
  throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${spec}: expected a folder of images, a .png grid, a .safetensors or .npy file, 'shapes' or 'fashion-mnist[:DIR]'`);
}

/** The metrics as a table of text lines. */
export function formatEvalTable(rows: Array<{ name: string; result: EvalResult }>): string {
  const first = rows[0]?.result;
  const cols: Array<{ head: string; get: (r: EvalResult) => number | undefined; digits: number }> = [];
  if (first?.swd) {
    first.swd.resolutions.forEach((res, i) => cols.push({ head: `SWD ${res}px`, get: (r) => r.swd?.levels[i], digits: 2 }));
    cols.push({ head: 'SWD mean', get: (r) => r.swd?.mean, digits: 2 });
  }
  for (const k of Object.keys(first?.frechet ?? {}) as EvalFeature[]) cols.push({ head: `FD ${k}`, get: (r) => r.frechet[k], digits: k === 'bands' ? 4 : 3 });
  first?.bandLevels?.resolutions.forEach((res, i) => {
    cols.push({ head: `FD bands ${res}px`, get: (r) => r.bandLevels?.frechet[i], digits: 4 });
    cols.push({ head: `detail ${res}px`, get: (r) => (r.bandLevels ? r.bandLevels.rmsGenerated[i] / r.bandLevels.rmsReal[i] : undefined), digits: 3 });
  });
  if (first?.precision !== undefined) {
    cols.push({ head: 'precision', get: (r) => r.precision, digits: 3 });
    cols.push({ head: 'recall', get: (r) => r.recall, digits: 3 });
  }
  const nameWidth = Math.max(4, ...rows.map((r) => r.name.length));
  const widths = cols.map((c) => Math.max(c.head.length, 9));
  const lines = [['set'.padEnd(nameWidth), ...cols.map((c, i) => c.head.padStart(widths[i]))].join('  ')];
  for (const r of rows)
    lines.push([r.name.padEnd(nameWidth), ...cols.map((c, i) => (c.get(r.result) === undefined ? '-' : c.get(r.result)!.toFixed(c.digits)).padStart(widths[i]))].join('  '));
  return lines.join('\n') + '\n';
}
