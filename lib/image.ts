// Images in and out: tensors in [-1, 1] <-> 8-bit pixels, grids, and PNG files (through sharp),
// written atomically (temp file + rename, lib/files.ts) so no half-written image is ever left on disk.
import * as path from 'node:path';
import { sharp } from './sharp';
import { decoflowError } from './errors';
import { writeFileAtomic } from './files';
import { native } from './native';
import { Tensor } from './tensor';

export { writeFileAtomic };

/** Pixels of a [N, C, H, W] f32 tensor in [-1, 1] as N interleaved 8-bit images. */
export function toPixels(images: Tensor): { pixels: Uint8Array[]; width: number; height: number; channels: number } {
  if (images.shape.length !== 4) throw decoflowError('ERR_DECOFLOW_SHAPE', `images: expected [N, C, H, W], got [${images.shape.join(', ')}]`);
  const [n, c, h, w] = images.shape;
  if (c !== 1 && c !== 3) throw decoflowError('ERR_DECOFLOW_SHAPE', `images: expected 1 or 3 channels, got ${c}`);
  const data = images.dataSync() as Float32Array;
  const pixels: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const out = new Uint8Array(h * w * c);
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < h * w; p++) {
        const v = data[((i * c + ch) * h * w) + p];
        out[p * c + ch] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
      }
    pixels.push(out);
  }
  return { pixels, width: w, height: h, channels: c };
}

export interface GridOptions {
  /** Images per row (default: about the square root of N). */
  columns?: number;
  /** Pixels between tiles (default 2). */
  padding?: number;
  /** Integer upscaling of the whole grid with nearest neighbour (default 1). */
  scale?: number;
}

/** Lays out N images (each tile [C, H, W]) as one RGB image. */
export function grid(images: Tensor, options: GridOptions = {}): { data: Uint8Array; width: number; height: number } {
  const { pixels, width, height, channels } = toPixels(images);
  const n = pixels.length;
  const cols = options.columns ?? Math.ceil(Math.sqrt(n));
  const pad = options.padding ?? 2;
  const scale = options.scale ?? 1;
  if (!Number.isInteger(cols) || cols < 1) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `grid: columns: expected a positive integer, got ${cols}`);
  if (!Number.isInteger(scale) || scale < 1 || scale > 16) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `grid: scale: expected an integer from 1 to 16, got ${scale}`);
  const rows = Math.ceil(n / cols);
  const gw = (cols * (width + pad) + pad) * scale;
  const gh = (rows * (height + pad) + pad) * scale;
  const out = new Uint8Array(gw * gh * 3).fill(255);
  for (let i = 0; i < n; i++) {
    const x0 = pad + (i % cols) * (width + pad);
    const y0 = pad + Math.floor(i / cols) * (height + pad);
    for (let y = 0; y < height * scale; y++)
      for (let x = 0; x < width * scale; x++) {
        const src = (Math.floor(y / scale) * width + Math.floor(x / scale)) * channels;
        const dst = ((y0 * scale + y) * gw + x0 * scale + x) * 3;
        for (let c = 0; c < 3; c++) out[dst + c] = pixels[i][src + (channels === 1 ? 0 : c)];
      }
  }
  return { data: out, width: gw, height: gh };
}

/** Encodes RGB bytes as PNG. */
export async function encodePng(rgb: { data: Uint8Array; width: number; height: number }): Promise<Buffer> {
  return sharp()(Buffer.from(rgb.data.buffer, rgb.data.byteOffset, rgb.data.byteLength), {
    raw: { width: rgb.width, height: rgb.height, channels: 3 },
  })
    .png()
    .toBuffer();
}

/** Writes images [N, C, H, W] in [-1, 1] as one PNG grid. */
export async function saveGrid(file: string, images: Tensor, options: GridOptions = {}): Promise<void> {
  await writeFileAtomic(file, await encodePng(grid(images, options)));
}

/** Writes each image [C, H, W] of a batch as its own PNG: prefix-00000.png, ... Returns the paths. */
export async function saveImages(dir: string, images: Tensor, { prefix = 'sample', start = 0 } = {}): Promise<string[]> {
  const { pixels, width, height, channels } = toPixels(images);
  const files: string[] = [];
  for (let i = 0; i < pixels.length; i++) {
    // 1-channel images stay 1-channel (grey) PNGs: sharp would otherwise write RGB
    const img = sharp()(Buffer.from(pixels[i].buffer), { raw: { width, height, channels: channels as 1 | 3 } });
    const png = await (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
    const file = path.join(dir, `${prefix}-${String(start + i).padStart(5, '0')}.png`);
    await writeFileAtomic(file, png);
    files.push(file);
  }
  return files;
}

/**
 * Reads an image file (PNG, JPEG, WebP, ...) as a [C, H, W] f32 array in [-1, 1], resized to
 * size x size (centre crop to a square first) and converted to `channels` (1 or 3).
 */
export async function readImage(file: string, size: number, channels: 1 | 3): Promise<Float32Array> {
  let raw: Buffer;
  try {
    let img = sharp()(file, { failOn: 'error' }).resize(size, size, { fit: 'cover', kernel: 'lanczos3' }).removeAlpha();
    img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
    raw = await img.raw().toBuffer();
  } catch (e) {
    throw decoflowError('ERR_DECOFLOW_FORMAT', `cannot decode image ${file}: ${(e as Error).message}`);
  }
  return native.pixelsToPlanar(raw, size, channels, size);
}
