// safetensors files: tensors by name (f32, i32) and string metadata. Reads validate everything the
// file claims (ERR_DECOFLOW_FORMAT for a corrupt file); writes are atomic.
import * as fs from 'node:fs';
import { decoflowError } from './errors';
import { native } from './native';
import { nativeOf, Tensor } from './tensor';

export interface SafetensorsContents {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export function readSafetensors(path: string): SafetensorsContents {
  const r = native.readSafetensors(path);
  const tensors: Record<string, Tensor> = {};
  for (const [k, h] of Object.entries(r.tensors)) tensors[k] = new Tensor(h);
  return { tensors, metadata: r.metadata };
}

export function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  const handles: Record<string, ReturnType<typeof nativeOf>> = {};
  for (const [k, t] of Object.entries(tensors)) handles[k] = nativeOf(t, `writeSafetensors: tensors.${k}`);
  native.writeSafetensors(path, handles, metadata);
}

/**
 * Only the metadata of a safetensors file, from its header (the 8-byte length and the JSON after it),
 * without reading the tensors. ERR_DECOFLOW_FORMAT when the header is not one.
 */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  const bad = (why: string) => decoflowError('ERR_DECOFLOW_FORMAT', `safetensors ${path}: ${why}`);
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw decoflowError('ERR_DECOFLOW_IO', `safetensors ${path}: cannot open (${(e as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, head, 0, 8, 0) !== 8) throw bad('shorter than its 8-byte header length');
    const n = head.readBigUInt64LE(0);
    if (n < 2n || n > BigInt(Math.min(size - 8, 100 * 1024 * 1024))) throw bad(`header length ${n} does not fit the file (${size} bytes)`);
    const json = Buffer.alloc(Number(n));
    if (fs.readSync(fd, json, 0, json.length, 8) !== json.length) throw bad('header cut short');
    let header: unknown;
    try {
      header = JSON.parse(json.toString('utf8'));
    } catch {
      throw bad('the header is not JSON');
    }
    const meta = (header as Record<string, unknown> | null)?.__metadata__ ?? {};
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta) || Object.values(meta).some((v) => typeof v !== 'string'))
      throw bad('__metadata__ is not an object of strings');
    return meta as Record<string, string>;
  } finally {
    fs.closeSync(fd);
  }
}
