// Declarations of the native binding (build/Release/decoflow.node). The TypeScript API in lib/ wraps
// it; users never call it directly.
export type DTypeName = 'f32' | 'f16' | 'bf16' | 'i32';
export type NativeTypedArray = Float32Array | Int32Array | Uint16Array;

export interface NativeTensor {
  shape(): number[];
  dtype(): DTypeName;
  device(): string;
  size(): number;
  disposed(): boolean;
  dataSync(): NativeTypedArray;
  data(): Promise<NativeTypedArray>;
  to(device: string): NativeTensor;
  reshape(shape: number[]): NativeTensor;
  cast(dtype: DTypeName): NativeTensor;
  dispose(): void;
}

export interface NativeProgress {
  step: number;
  total: number;
  [key: string]: number;
}

export interface NativeBackend {
  name: 'cpu' | 'cuda';
  available: boolean;
  devices: number;
  detail?: string;
  reason?: string;
}

export interface NativeBuildInfo {
  blas: string;
  blasAvailable: boolean;
  threads: number;
  hardwareThreads: number;
  compiler?: string;
  nativeArch: boolean;
}

export interface NativeMemory {
  [device: string]: { tensors: number; bytes: number; peakBytes: number };
}

export interface NativeBinding {
  NativeTensor: { new (): never };
  tensorFrom(data: NativeTypedArray, shape: number[], options?: { dtype?: DTypeName; device?: string }): NativeTensor;
  tensorZeros(shape: number[], options?: { dtype?: DTypeName; device?: string }): NativeTensor;
  tensorRandn(shape: number[], options?: { seed?: number; dtype?: DTypeName; device?: string }): NativeTensor;

  backends(): NativeBackend[];
  buildInfo(): NativeBuildInfo;
  setThreads(n: number): void;
  getThreads(): number;
  memory(): NativeMemory;
  resetPeakMemory(device?: string): void;

  matmulSync(a: NativeTensor, b: NativeTensor): NativeTensor;
  matmul(a: NativeTensor, b: NativeTensor, options?: { onProgress?: (p: NativeProgress) => void }): Promise<NativeTensor>;
  setGemm(impl: 'auto' | 'blas' | 'builtin'): void;
  getGemm(): 'auto' | 'blas' | 'builtin';

  pyramidDecomposeSync(x: NativeTensor, options?: NativePyramidOptions): NativeTensor[];
  pyramidDecompose(x: NativeTensor, options?: NativePyramidOptions): Promise<NativeTensor[]>;
  pyramidRecomposeSync(levels: NativeTensor[], options?: NativePyramidOptions): NativeTensor;
  pyramidRecompose(levels: NativeTensor[], options?: NativePyramidOptions): Promise<NativeTensor>;
  pyramidPreviewSync(levels: NativeTensor[], upTo: number, options?: NativePyramidOptions): NativeTensor;
  pyramidPreview(levels: NativeTensor[], upTo: number, options?: NativePyramidOptions): Promise<NativeTensor>;
  /** Median ms of a multithreaded memcpy of `bytes` over `reps` runs (a bandwidth yardstick). */
  benchCopy(bytes: number, reps: number): number;
}

export interface NativePyramidOptions {
  stages?: number;
  kind?: 'laplacian' | 'haar';
  /** decompose: one tensor per stage; recompose and preview: one image tensor. */
  out?: NativeTensor | NativeTensor[];
}

export interface NativeShapesRequest {
  seed?: number;
  start?: number;
  count?: number;
  size?: number;
  indices?: number[];
}

export interface NativeBinding {
  shapesBatchSync(request: NativeShapesRequest): { images: NativeTensor; labels: NativeTensor };
  shapesBatch(request: NativeShapesRequest): Promise<{ images: NativeTensor; labels: NativeTensor }>;
  shapeClasses(): string[];
  gatherRowsSync(source: NativeTensor, indices: NativeTensor): NativeTensor;
  gatherRows(source: NativeTensor, indices: NativeTensor): Promise<NativeTensor>;
}
