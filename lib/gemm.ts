// Matrix products: a [..., m, k] @ b [..., k, n] -> [..., m, n] (f32). b may be 2-D and shared by
// every batch of a. On the CPU: OpenBLAS when it is installed, else decoflow's blocked kernel.
import type { NativeProgress } from '../types/native';
import { native } from './native';
import { nativeOf, Tensor } from './tensor';

export interface MatmulOptions {
  /** Called on the main thread as the work advances. */
  onProgress?: (progress: NativeProgress) => void;
}

/** Runs off the event loop; the inputs may be disposed while it runs. */
export async function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Promise<Tensor> {
  const handle = await native.matmul(nativeOf(a, 'matmul: a'), nativeOf(b, 'matmul: b'), options);
  return new Tensor(handle);
}

export function matmulSync(a: Tensor, b: Tensor): Tensor {
  return new Tensor(native.matmulSync(nativeOf(a, 'matmulSync: a'), nativeOf(b, 'matmulSync: b')));
}

/** Chooses the CPU GEMM: 'blas' (OpenBLAS), 'builtin', or 'auto' (BLAS when loaded). */
export function setGemm(impl: 'auto' | 'blas' | 'builtin'): void {
  native.setGemm(impl);
}

export function getGemm(): 'auto' | 'blas' | 'builtin' {
  return native.getGemm();
}
