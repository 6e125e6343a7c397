// safetensors files: tensors by name (f32, i32) and string metadata. Reads validate everything the
// file claims (ERR_DECOFLOW_FORMAT for a corrupt file); writes are atomic.
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
