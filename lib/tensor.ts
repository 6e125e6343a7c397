// The Tensor: a typed, shaped block of memory on a device, owned by native code.
//
// Which calls copy and which share memory:
//   copy:  Tensor.from (the typed array is copied in), data()/dataSync() (copied out), to(), cast()
//   share: reshape() (a new view of the same storage)
// Storage is freed when every tensor sharing it is disposed (or collected by the garbage
// collector, a safety net: call dispose(), or use `using`, to free memory promptly).
import type { DTypeName, NativeTensor, NativeTypedArray } from '../types/native';
import { decoflowError } from './errors';
import { native } from './native';

export type DType = DTypeName;
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
/** f32: Float32Array, i32: Int32Array, f16 and bf16: Uint16Array of raw bits. */
export type TypedArray = NativeTypedArray;

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
}

const disposeSymbol: symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose');

// Frees the native storage of tensors that were dropped without dispose().
const registry = new FinalizationRegistry<NativeTensor>((handle) => handle.dispose());

export class Tensor {
  #handle: NativeTensor | null;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  /** Number of elements. */
  readonly size: number;

  /** @internal Wraps a native handle; use the static constructors. */
  constructor(handle: NativeTensor) {
    if (handle === null || typeof handle !== 'object' || typeof handle.shape !== 'function') {
      throw decoflowError('ERR_DECOFLOW_ARG_TYPE', 'Tensor: use Tensor.from, Tensor.zeros or Tensor.randn to make a tensor');
    }
    this.#handle = handle;
    this.shape = Object.freeze(handle.shape());
    this.dtype = handle.dtype();
    this.device = handle.device() as Device;
    this.size = handle.size();
    registry.register(this, handle, this);
  }

  /** A tensor holding a copy of `data`. f16/bf16 take a Uint16Array of raw bits. */
  static from(data: TypedArray, shape: readonly number[], options: TensorOptions = {}): Tensor {
    return new Tensor(native.tensorFrom(data, shape as number[], options));
  }

  static zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return new Tensor(native.tensorZeros(shape as number[], options));
  }

  /** Standard normal samples from a counter-based generator: the same seed gives the same tensor. */
  static randn(shape: readonly number[], options: TensorOptions & { seed?: number } = {}): Tensor {
    return new Tensor(native.tensorRandn(shape as number[], options));
  }

  /** @internal The native handle, for the op wrappers. Throws if disposed. */
  get native(): NativeTensor {
    if (this.#handle === null) throw decoflowError('ERR_DECOFLOW_DISPOSED', 'Tensor: the tensor has been disposed');
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === null;
  }

  /** A copy of the elements, made off the event loop. */
  data(): Promise<TypedArray> {
    return this.native.data();
  }

  /** A copy of the elements, made synchronously. */
  dataSync(): TypedArray {
    return this.native.dataSync();
  }

  /** A copy on `device` (always a copy, also to the same device). */
  to(device: Device): Tensor {
    return new Tensor(this.native.to(device));
  }

  /** The same copy, made off the event loop (for moving batches to a GPU while another step runs). */
  async toAsync(device: Device): Promise<Tensor> {
    return new Tensor(await this.native.toAsync(device));
  }

  /** A view with another shape over the same storage; one dimension may be -1. */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.native.reshape(shape as number[]));
  }

  /** A copy converted to `dtype` (round to nearest even for f16/bf16). */
  cast(dtype: DType): Tensor {
    return new Tensor(this.native.cast(dtype));
  }

  /** Releases this tensor's reference to its storage. Safe to call twice. */
  dispose(): void {
    if (this.#handle === null) return;
    registry.unregister(this);
    this.#handle.dispose();
    this.#handle = null;
  }

  [disposeSymbol](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

/** Reads the native handle of a Tensor argument, naming it in the error otherwise. */
export function nativeOf(t: unknown, name: string): NativeTensor {
  if (!(t instanceof Tensor)) throw decoflowError('ERR_DECOFLOW_ARG_TYPE', `${name}: expected a Tensor`);
  if (t.disposed) throw decoflowError('ERR_DECOFLOW_DISPOSED', `${name}: the tensor has been disposed`);
  return t.native;
}
