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

  // The DiT model (native/addon/model_binding.cpp).
  modelCreate(configJson: string, options: object): NativeModelHandle;
  modelLoad(path: string, options: object): NativeModelHandle;
  modelInfo(model: NativeModelHandle): NativeModelInfo;
  modelGet(model: NativeModelHandle, which: string, name: string): NativeTensor;
  modelSetParameter(model: NativeModelHandle, name: string, value: NativeTensor): void;
  modelForwardSync(model: NativeModelHandle, batch: object): NativeTensor[];
  modelForward(model: NativeModelHandle, batch: object): Promise<NativeTensor[]>;
  modelLossSync(model: NativeModelHandle, batch: object): NativeLossResult;
  modelLossAndGradSync(model: NativeModelHandle, batch: object): NativeLossResult;
  modelLossAndGrad(model: NativeModelHandle, batch: object): Promise<NativeLossResult>;
  modelTrainStepSync(model: NativeModelHandle, batch: object): NativeLossResult & NativeStepResult;
  modelTrainStep(model: NativeModelHandle, batch: object): Promise<NativeLossResult & NativeStepResult>;
  modelStepSync(model: NativeModelHandle): NativeStepResult;
  modelSetOptimizer(model: NativeModelHandle, options: object): void;
  modelSave(model: NativeModelHandle, path: string, options: object): void;
  modelDispose(model: NativeModelHandle): void;

  readSafetensors(path: string): { tensors: Record<string, NativeTensor>; metadata: Record<string, string> };
  writeSafetensors(path: string, tensors: Record<string, NativeTensor>, metadata: Record<string, string>): void;
}

/** An opaque handle (an N-API External) to a native model. */
export interface NativeModelHandle {
  readonly __nativeModel: unique symbol;
}

export interface NativeModelInfo {
  config: string;
  maxBatch: number;
  numParameters: number;
  step: number;
  optimizer: string;
  parameters: { name: string; shape: number[] }[];
}

export interface NativeLossResult {
  loss: number;
  stageLosses: number[];
  step: number;
}

export interface NativeStepResult {
  lr: number;
  gradNorm: number;
  clipScale: number;
  step: number;
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
