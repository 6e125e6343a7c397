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
  toAsync(device: string): Promise<NativeTensor>;
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
  /** cuda: the libdecoflow_cuda.so in use. */
  library?: string;
}

export interface NativeBuildInfo {
  blas: string;
  blasAvailable: boolean;
  threads: number;
  hardwareThreads: number;
  compiler?: string;
  nativeArch: boolean;
  cpuLevel: CpuLevelName | null;
  cpuLevelDetail: string;
  cpuLevels: CpuLevelName[];
  cpuLevelsSupported: CpuLevelName[];
}

export type CpuLevelName = 'baseline' | 'avx2' | 'avx512';

export interface NativeMemory {
  [device: string]: { tensors: number; bytes: number; peakBytes: number; cachedBytes?: number };
}

export interface NativeBinding {
  NativeTensor: { new (): never };
  tensorFrom(data: NativeTypedArray, shape: number[], options?: { dtype?: DTypeName; device?: string }): NativeTensor;
  tensorZeros(shape: number[], options?: { dtype?: DTypeName; device?: string }): NativeTensor;
  tensorRandn(shape: number[], options?: { seed?: number; dtype?: DTypeName; device?: string }): NativeTensor;

  backends(): NativeBackend[];
  buildInfo(): NativeBuildInfo;
  setThreads(n: number): void;
  setCudaLibraryCandidates(paths: string[]): void;
  getThreads(): number;
  memory(): NativeMemory;
  resetPeakMemory(device?: string): void;
  releaseCachedMemory(): void;

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
  device: string;
  precision: string;
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
  emaDecay: number;
  step: number;
}

// Flash attention (native/addon/attention_binding.cpp).
export interface NativeBinding {
  attentionSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, options?: NativeAttentionOptions): NativeAttentionOutput;
  attention(q: NativeTensor, k: NativeTensor, v: NativeTensor, options?: NativeAttentionOptions): Promise<NativeAttentionOutput>;
  attentionBackwardSync(q: NativeTensor, k: NativeTensor, v: NativeTensor, o: NativeTensor, lse: NativeTensor, dO: NativeTensor,
    options?: NativeAttentionOptions): NativeAttentionGrads;
  attentionBackward(q: NativeTensor, k: NativeTensor, v: NativeTensor, o: NativeTensor, lse: NativeTensor, dO: NativeTensor,
    options?: NativeAttentionOptions): Promise<NativeAttentionGrads>;
}

export interface NativeAttentionOptions {
  scale?: number;
  causal?: boolean;
}
export interface NativeAttentionOutput {
  o: NativeTensor;
  lse: NativeTensor;
}
export interface NativeAttentionGrads {
  dq: NativeTensor;
  dk: NativeTensor;
  dv: NativeTensor;
}

export interface NativePyramidOptions {
  stages?: number;
  kind?: 'laplacian' | 'haar' | 'consistent';
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
  kind?: 'laplacian' | 'haar' | 'consistent';
}

export type NativeTrainerHandle = { readonly __trainer: unique symbol };
export type NativeCancelHandle = { readonly __cancel: unique symbol };

export interface NativeTrainStats {
  step: number;
  activeStage: number;
  loss: number;
  stageLoss: number[];
  gradNorm: number;
  lr: number;
}

export interface NativeSampleResult {
  images: NativeTensor;
  levels: NativeTensor[];
  previews: NativeTensor[];
  intermediates: NativeTensor[];
}

export interface NativeBinding {
  trainerCreate(model: NativeModelHandle, options: object): NativeTrainerHandle;
  trainerOptions(trainer: NativeTrainerHandle): Record<string, unknown>;
  trainerStep(trainer: NativeTrainerHandle, images: NativeTensor, labels?: NativeTensor): Promise<NativeTrainStats>;
  trainerStepSync(trainer: NativeTrainerHandle, images: NativeTensor, labels?: NativeTensor): NativeTrainStats;
  trainerDispose(trainer: NativeTrainerHandle): void;
  modelSample(
    model: NativeModelHandle,
    options: object,
    onProgress?: (p: NativeProgress) => void,
  ): { promise: Promise<NativeSampleResult>; cancel: NativeCancelHandle };
  cancelJob(cancel: NativeCancelHandle): void;
  trainerDraws(
    trainer: NativeTrainerHandle,
    step: number,
    images: NativeTensor,
    labels?: NativeTensor,
  ): { levels: NativeTensor[]; noise: NativeTensor[]; t: NativeTensor; mask: NativeTensor; labels: NativeTensor; activeStage: number };
  trainerDefaults(stages: number): Record<string, unknown>;
  flowSchedule(stages: number, stepsPerStage: number[], thresholds: number[], stageTimeShifts?: number[]): { times: number[][]; newestStage: number[] };
  samplerDefaults(stages: number): { stepsPerStage: number[]; thresholds: number[] };
}

export interface NativeBinding {
  // Generation-quality metrics (native/addon/eval_binding.cpp).
  evalMetricsSync(generated: NativeTensor, real: NativeTensor, options?: object): object;
  evalMetrics(generated: NativeTensor, real: NativeTensor, options?: object): Promise<object>;
  evalFeaturesSync(images: NativeTensor, kind: string): NativeTensor;
  evalFrechetSync(meanA: NativeTensor, covA: NativeTensor, meanB: NativeTensor, covB: NativeTensor): number;
  evalEigenSync(matrix: NativeTensor): { values: Float64Array; vectors: Float64Array };
}

export interface NativeBinding {
  // The loaders' file parsers (native/addon/io_binding.cpp).
  parseIdx(bytes: Uint8Array, rank: number, what: string): { dims: number[]; offset: number };
  npyImages(bytes: Uint8Array, what: string): { shape: number[]; data: Float32Array };
  gridLayout(
    width: number,
    height: number,
    tile: number,
    padding: number,
    offset: number,
    limit: number,
  ): { padding: number; cols: number; rows: number; first: number; count: number; origins: number[] };
  pixelsToPlanar(raw: Uint8Array, side: number, channels: number, size: number): Float32Array;
}

/** The measurements of `decoflow bench` that the public ops cannot make (native/addon/bench_binding.cpp). */
export interface NativeBinding {
  /** The FMA chains' vector width and count, and the instruction-set path the kernels were built for. */
  benchInfo(): { lanes: number; chains: number; isa: string };
  /** Runs `iterations` rounds of `chains` FMAs on `lanes`-wide vectors on each of `threads` threads. */
  benchFma(threads: number, iterations: number): void;
  /** Copies src's bytes into dst (same size and device): thread pool on the CPU, one device copy on CUDA. */
  benchCopyTensor(dst: NativeTensor, src: NativeTensor): void;
  /** Waits for the work queued on a CUDA device ('cpu': nothing to wait for). */
  benchSynchronize(device: string): void;
  /** c [m, n] = a [m, k] b [k, n], bf16 CUDA tensors, through cuBLASLt (queued on the device's stream). */
  benchGemmBf16(a: NativeTensor, b: NativeTensor, c: NativeTensor): void;
}
