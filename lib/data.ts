// Datasets: the embedded procedural shapes (no download), Fashion-MNIST from its IDX files, and a
// folder of images. Every dataset yields batches of f32 images [B, C, S, S] in [-1, 1] with i32
// labels, assembled off the main thread; BatchLoader shuffles per epoch (seeded) and prefetches.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { decoflowError } from './errors';
import { readImage } from './image';
import { native } from './native';
import { Tensor, type Device } from './tensor';

const gunzip = promisify(zlib.gunzip);

export interface Batch {
  /** [B, C, S, S] f32 in [-1, 1] */
  images: Tensor;
  /** [B] i32 class indices (0 for unconditional datasets) */
  labels: Tensor;
}

export interface Dataset {
  readonly name: string;
  /** Number of images (an epoch). */
  readonly size: number;
  readonly channels: number;
  readonly imageSize: number;
  /** 0 for an unconditional dataset. */
  readonly numClasses: number;
  readonly classNames: string[];
  /** The images at `indices`, assembled on a worker thread. */
  batch(indices: readonly number[]): Promise<Batch>;
  dispose(): void;
}

function checkIndices(indices: readonly number[], size: number, name: string): void {
  if (!Array.isArray(indices) || indices.length === 0)
    throw decoflowError('ERR_DECOFLOW_ARG_TYPE', `${name}.batch: indices: expected a non-empty array of image indices`);
  for (const i of indices)
    if (!Number.isInteger(i) || i < 0 || i >= size)
      throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${name}.batch: index ${i} is outside [0, ${size})`);
}

/**
 * The embedded dataset: coloured shapes (8 classes) over smooth backgrounds, 3 channels. Image i of
 * a seed is always the same image; `size` images make an epoch (the generator has no end).
 */
export function shapesDataset(options: { seed?: number; imageSize?: number; size?: number } = {}): Dataset {
  const seed = options.seed ?? 0;
  const imageSize = options.imageSize ?? 32;
  const size = options.size ?? 60000;
  if (!Number.isInteger(imageSize) || imageSize < 4 || imageSize > 1024)
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `shapesDataset: imageSize: expected an integer from 4 to 1024, got ${imageSize}`);
  if (!Number.isInteger(size) || size < 1) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `shapesDataset: size: expected a positive integer, got ${size}`);
  const classNames = native.shapeClasses();
  return {
    name: 'shapes',
    size,
    channels: 3,
    imageSize,
    numClasses: classNames.length,
    classNames,
    async batch(indices) {
      checkIndices(indices, size, 'shapes');
      const b = await native.shapesBatch({ seed, size: imageSize, indices: [...indices] });
      return { images: new Tensor(b.images), labels: new Tensor(b.labels) };
    },
    dispose() {},
  };
}

/** A dataset held in memory as one tensor [N, C, S, S]; batches are gathered on a worker thread. */
export function tensorDataset(name: string, images: Tensor, labels: Int32Array, numClasses: number, classNames: string[] = []): Dataset {
  const [n, c, h] = images.shape;
  if (images.shape.length !== 4 || images.shape[2] !== images.shape[3])
    throw decoflowError('ERR_DECOFLOW_SHAPE', `${name}: images: expected [N, C, S, S], got [${images.shape.join(', ')}]`);
  if (labels.length !== n) throw decoflowError('ERR_DECOFLOW_SHAPE', `${name}: ${labels.length} labels for ${n} images`);
  const labelTensor = Tensor.from(labels, [n], { dtype: 'i32' });
  return {
    name,
    size: n,
    channels: c,
    imageSize: h,
    numClasses,
    classNames,
    async batch(indices) {
      checkIndices(indices, n, name);
      const idx = Tensor.from(Int32Array.from(indices), [indices.length], { dtype: 'i32' });
      try {
        const [im, lb] = await Promise.all([native.gatherRows(images.native, idx.native), native.gatherRows(labelTensor.native, idx.native)]);
        return { images: new Tensor(im), labels: new Tensor(lb) };
      } finally {
        idx.dispose();
      }
    },
    dispose() {
      images.dispose();
      labelTensor.dispose();
    },
  };
}

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

async function readIdx(file: string, rank: number): Promise<{ dims: number[]; data: Uint8Array }> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (e) {
    throw decoflowError('ERR_DECOFLOW_IO', `cannot read ${file}: ${(e as Error).message}`);
  }
  if (file.endsWith('.gz')) {
    try {
      bytes = await gunzip(bytes);
    } catch (e) {
      throw decoflowError('ERR_DECOFLOW_FORMAT', `${file}: not a valid gzip file (${(e as Error).message})`);
    }
  }
  const { dims, offset } = native.parseIdx(bytes, rank, file);
  return { dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + offset, bytes.length - offset) };
}

/**
 * Fashion-MNIST from its IDX files (gzipped or not): 1 channel, 28 px padded to `imageSize` (32)
 * with the background value. `dir` defaults to where Debian's dataset-fashion-mnist puts it.
 */
export async function fashionMnist(options: { dir?: string; split?: 'train' | 'test'; imageSize?: number; limit?: number } = {}): Promise<Dataset> {
  const dir = options.dir ?? FASHION_MNIST_DIR;
  const split = options.split ?? 'train';
  const imageSize = options.imageSize ?? 32;
  if (split !== 'train' && split !== 'test') throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `fashionMnist: split: expected 'train' or 'test', got '${split}'`);
  const prefix = split === 'train' ? 'train' : 't10k';
  const find = (stem: string): string => {
    for (const f of [`${stem}.gz`, stem]) if (fs.existsSync(path.join(dir, f))) return path.join(dir, f);
    throw decoflowError('ERR_DECOFLOW_IO', `fashionMnist: ${stem}(.gz) not found in ${dir} (install Debian's dataset-fashion-mnist or pass dir)`);
  };
  const [images, labels] = await Promise.all([
    readIdx(find(`${prefix}-images-idx3-ubyte`), 3),
    readIdx(find(`${prefix}-labels-idx1-ubyte`), 1),
  ]);
  const [n0, h, w] = images.dims;
  if (labels.dims[0] !== n0) throw decoflowError('ERR_DECOFLOW_FORMAT', `fashionMnist: ${n0} images but ${labels.dims[0]} labels`);
  if (imageSize < Math.max(h, w)) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `fashionMnist: imageSize ${imageSize} is smaller than the ${h} x ${w} images`);
  const n = Math.min(n0, options.limit ?? n0);
  const out = new Float32Array(n * imageSize * imageSize).fill(-1);
  const top = Math.floor((imageSize - h) / 2);
  const left = Math.floor((imageSize - w) / 2);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        out[(i * imageSize + top + y) * imageSize + left + x] = images.data[(i * h + y) * w + x] / 127.5 - 1;
  const lab = Int32Array.from(labels.data.subarray(0, n));
  for (const l of lab) if (l > 9) throw decoflowError('ERR_DECOFLOW_FORMAT', `fashionMnist: label ${l} outside 0..9`);
  return tensorDataset(`fashion-mnist-${split}`, Tensor.from(out, [n, 1, imageSize, imageSize]), lab, 10, FASHION_CLASSES);
}

const IMAGE_EXT = /\.(png|jpe?g|webp|gif|tiff?|avif)$/i;

/**
 * A folder of images, resized (centre crop) to imageSize. Subfolders are classes (sorted by
 * name); images directly in the folder make an unconditional dataset.
 */
export async function imageFolder(dir: string, options: { imageSize?: number; channels?: 1 | 3; limit?: number } = {}): Promise<Dataset> {
  const imageSize = options.imageSize ?? 32;
  const channels = options.channels ?? 3;
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw decoflowError('ERR_DECOFLOW_IO', `imageFolder: cannot read ${dir}: ${(e as Error).message}`);
  }
  const classNames = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const files: Array<{ file: string; label: number }> = [];
  for (const e of entries) if (e.isFile() && IMAGE_EXT.test(e.name)) files.push({ file: path.join(dir, e.name), label: 0 });
  for (const [label, cls] of classNames.entries())
    for (const f of (await fs.promises.readdir(path.join(dir, cls))).sort())
      if (IMAGE_EXT.test(f)) files.push({ file: path.join(dir, cls, f), label });
  files.sort((a, b) => a.label - b.label || a.file.localeCompare(b.file));
  const chosen = files.slice(0, options.limit ?? files.length);
  if (chosen.length === 0) throw decoflowError('ERR_DECOFLOW_IO', `imageFolder: no images (png, jpg, webp, ...) in ${dir}`);
  const per = channels * imageSize * imageSize;
  const out = new Float32Array(chosen.length * per);
  // decode with bounded concurrency (sharp decodes on libuv's worker threads)
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < chosen.length) {
      const i = next++;
      out.set(await readImage(chosen[i].file, imageSize, channels), i * per);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const labels = Int32Array.from(chosen.map((c) => c.label));
  return tensorDataset(`folder:${dir}`, Tensor.from(out, [chosen.length, channels, imageSize, imageSize]), labels, classNames.length, classNames);
}

/** 'shapes', 'fashion-mnist' (or 'fashion-mnist:DIR'), or a folder path ('folder:DIR' or DIR). */
export async function loadDataset(spec: string, options: { imageSize?: number; seed?: number; limit?: number } = {}): Promise<Dataset> {
  if (spec === 'shapes') return shapesDataset({ seed: options.seed, imageSize: options.imageSize });
  if (spec === 'fashion-mnist' || spec.startsWith('fashion-mnist:'))
    return fashionMnist({ dir: spec.includes(':') ? spec.slice(spec.indexOf(':') + 1) : undefined, imageSize: options.imageSize, limit: options.limit });
  const dir = spec.startsWith('folder:') ? spec.slice(7) : spec;
  if (fs.existsSync(dir) && fs.statSync(dir).isDirectory()) return imageFolder(dir, { imageSize: options.imageSize, limit: options.limit });
  throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `dataset: expected 'shapes', 'fashion-mnist[:DIR]' or a folder of images, got '${spec}'`);
}

/** Seeded per-epoch shuffling with one batch prefetched while the caller works on the current one. */
export interface BatchLoaderOptions {
  /**
   * Where the images of each batch should be ('cpu' by default): with a CUDA device the next batch
   * is copied there off the event loop while the current one trains (labels stay on the host, where
   * the trainer reads them).
   */
  device?: string;
}

export class BatchLoader {
  #order: number[] = [];
  #pos = 0;
  #epoch = 0;
  #pending: Promise<Batch> | null = null;
  readonly device: string;

  constructor(
    readonly dataset: Dataset,
    readonly batchSize: number,
    readonly seed = 0,
    options: BatchLoaderOptions = {},
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `BatchLoader: batchSize: expected a positive integer, got ${batchSize}`);
    this.device = options.device ?? 'cpu';
    if (typeof this.device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(this.device))
      throw decoflowError('ERR_DECOFLOW_DEVICE', `BatchLoader: options.device: expected 'cpu', 'cuda' or 'cuda:N', got '${String(options.device)}'`);
  }

  async #load(indices: number[]): Promise<Batch> {
    const batch = await this.dataset.batch(indices);
    if (this.device === 'cpu') return batch;
    const images = await batch.images.toAsync(this.device as Device);
    batch.images.dispose();
    return { ...batch, images };
  }

  /** Skips ahead `batches` batches (used when resuming a run). */
  skip(batches: number): void {
    for (let i = 0; i < batches; i++) this.#nextIndices();
  }

  #nextIndices(): number[] {
    const out: number[] = [];
    while (out.length < this.batchSize) {
      if (this.#pos >= this.#order.length) this.#shuffle();
      out.push(this.#order[this.#pos++]);
    }
    return out;
  }

  #shuffle(): void {
    const n = this.dataset.size;
    this.#order = Array.from({ length: n }, (_, i) => i);
    // xorshift32 Fisher-Yates, keyed by (seed, epoch)
    let s = (this.seed * 2654435761 + this.#epoch * 40503 + 1) >>> 0 || 1;
    for (let i = n - 1; i > 0; i--) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      const j = s % (i + 1);
      [this.#order[i], this.#order[j]] = [this.#order[j], this.#order[i]];
    }
    this.#pos = 0;
    this.#epoch++;
  }

  /** The next batch; the one after it starts loading at once. */
  async next(): Promise<Batch> {
    const current = this.#pending ?? this.#load(this.#nextIndices());
    this.#pending = this.#load(this.#nextIndices());
    this.#pending.catch(() => {}); // surfaced by the next call
    return current;
  }
}
