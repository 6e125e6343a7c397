// The DFM transformer (one DiT for every stage) with its AdamW optimiser and EMA, trained on the
// CPU with a hand-written backward. A thin layer over the native model: tensors go in and out,
// everything else (parameters, gradients, optimiser state, activations) lives in native buffers
// allocated once for (config, maxBatch).
import type { NativeModelHandle, NativeTensor } from '../types/native';
import { decoflowError } from './errors';
import { native } from './native';
import { nativeOf, Tensor } from './tensor';

export interface ModelConfig {
  /** Number of stages S of the decomposition (1 = plain flow matching). */
  stages: number;
  channels: number;
  /** Size of the finest stage; stage s (0-based) is height / 2^(S-1-s). */
  height: number;
  width: number;
  /** One patch size per stage; every stage must give the same token grid. */
  patchSizes: number[];
  hidden: number;
  depth: number;
  heads: number;
  mlpRatio?: number;
  /** 0: unconditional. Label `numClasses` is the null class (classifier-free guidance). */
  numClasses?: number;
  stageEmbedding?: boolean;
  posEmbedding?: boolean;
  freqDim?: number;
  /** Times in [0, 1] are multiplied by this before the sinusoidal features (default 1000). */
  timeScale?: number;
  /**
   * What each stage's final layer predicts (default: every stage 'v'). 'v': its velocity; 'x': its
   * clean level X^, which the model turns into the velocity (X^ - x_t) / max(1 - t, cleanMinGap), so
   * the outputs, the loss, the trainer and the sampler are velocities either way (docs/METHOD.md).
   */
  stagePredictions?: ('v' | 'x')[];
  /**
   * The 'x' stages' clamp of 1 - t, in [0.01, 1] (default 0.05). Once 1 - t is below it, an 'x'
   * stage's output is x_t + gap * v rather than its clean level: a larger gap moves it towards a
   * velocity prediction near the data, where the clean level's errors would be scaled up most.
   */
  cleanMinGap?: number;
  /**
   * The pyramid the stages come from (default 'laplacian'; pyramid.ts): recorded in checkpoints, and
   * what the Trainer and the Sampler use (an option naming another one is an error).
   */
  decomposition?: 'laplacian' | 'haar' | 'consistent';
}

export interface OptimizerOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** lr ramps linearly over this many steps. */
  warmupSteps?: number;
  /** Max global gradient norm; 0 disables clipping. */
  gradClip?: number;
  emaDecay?: number;
  /** EMA warm-up (default true): step n uses min(emaDecay, (1 + n) / (10 + n)). Resumed checkpoints
   * written without it keep it off. */
  emaWarmup?: boolean;
  /** > 0: the power-function EMA (EDM2), decay (1 - 1/n)^(emaPower + 1), instead of emaDecay; 6.94 and
   * 16.97 are sigma_rel 0.10 and 0.05. Default 0 (off). */
  emaPower?: number;
}

export interface ModelOptions {
  /** Largest batch the preallocated activations can take (default 1). */
  maxBatch?: number;
  /** Seed of the DiT initialisation (default 0). */
  seed?: number;
  optimizer?: OptimizerOptions;
  /** Where the parameters, optimiser state and activations live and the model runs (default 'cpu'). */
  device?: string;
  /**
   * The compute type of activations and of the weights the kernels read: 'f32', or 'bf16' (mixed
   * precision: f32 master weights, gradients and optimiser state). Default: 'f32' on the CPU (its
   * only one), 'bf16' on CUDA.
   */
  precision?: 'f32' | 'bf16';
}

/** Per-stage inputs x[s] [B, C, H_s, W_s], times t [B, S] (0 = noise, 1 = data), mask [B, S]
 * (0/1; a 0 stage's input is ignored and its loss excluded; default all 1), labels i32 [B]. */
export interface ModelInputs {
  x: Tensor[];
  t: Tensor;
  mask?: Tensor;
  labels?: Tensor;
}

export interface ModelBatch extends ModelInputs {
  /** Per-stage velocity targets v[s] with the shape of x[s]. */
  targets: Tensor[];
}

export interface LossResult {
  loss: number;
  stageLosses: number[];
  /** Optimizer steps taken so far. */
  step: number;
}

export interface StepResult {
  lr: number;
  gradNorm: number;
  clipScale: number;
  /** The EMA decay this step used (after warm-up or the power rule). */
  emaDecay: number;
  step: number;
}

export type TrainStepResult = LossResult & StepResult;

export interface ParameterInfo {
  name: string;
  shape: number[];
}

export interface SaveOptions {
  /** Include the AdamW moments and step (default true). */
  optimizer?: boolean;
  /** Include the EMA weights (default true). */
  ema?: boolean;
}

export interface LoadOptions extends Pick<ModelOptions, 'device' | 'precision'> {
  maxBatch?: number;
  /** Optimizer options, used when the checkpoint has none. */
  optimizer?: OptimizerOptions;
  /** The config the checkpoint must have (else ERR_DECOFLOW_CONFIG). */
  expectConfig?: ModelConfig;
  /** Load a checkpoint holding NaN or infinite values (default false: ERR_DECOFLOW_NON_FINITE). */
  allowNonFinite?: boolean;
}

type Which = 'param' | 'grad' | 'ema' | 'adam.m' | 'adam.v';

function nativeBatch(b: ModelInputs | ModelBatch, fn: string): Record<string, unknown> {
  if (b === null || typeof b !== 'object') throw decoflowError('ERR_DECOFLOW_ARG_TYPE', `${fn}: batch: expected an object`);
  const list = (ts: unknown, key: string): NativeTensor[] => {
    if (!Array.isArray(ts)) throw decoflowError('ERR_DECOFLOW_ARG_TYPE', `${fn}: batch.${key}: expected an array of tensors`);
    return ts.map((t, i) => nativeOf(t, `${fn}: batch.${key}[${i}]`));
  };
  const out: Record<string, unknown> = { x: list(b.x, 'x'), t: nativeOf(b.t, `${fn}: batch.t`) };
  if (b.mask !== undefined) out.mask = nativeOf(b.mask, `${fn}: batch.mask`);
  if (b.labels !== undefined) out.labels = nativeOf(b.labels, `${fn}: batch.labels`);
  if ('targets' in b) out.targets = list(b.targets, 'targets');
  return out;
}

export class Model {
  #handle: NativeModelHandle | null;
  readonly config: Readonly<Required<ModelConfig>>;
  readonly maxBatch: number;
  readonly numParameters: number;
  /** The device the model runs on ('cpu', 'cuda:0', ...) and its compute type. */
  readonly device: string;
  readonly precision: 'f32' | 'bf16';

  private constructor(handle: NativeModelHandle) {
    this.#handle = handle;
    const info = native.modelInfo(handle);
    this.config = Object.freeze(JSON.parse(info.config));
    this.maxBatch = info.maxBatch;
    this.device = info.device;
    this.precision = info.precision as 'f32' | 'bf16';
    this.numParameters = info.numParameters;
  }

  /** A new model with DiT's initialisation (adaLN-Zero: it outputs zeros until trained). */
  static create(config: ModelConfig, options: ModelOptions = {}): Model {
    if (config === null || typeof config !== 'object')
      throw decoflowError('ERR_DECOFLOW_ARG_TYPE', 'Model.create: config: expected an object');
    return new Model(native.modelCreate(JSON.stringify(config), options));
  }

  /** Loads a safetensors checkpoint (config from its metadata; optimizer state and EMA when present;
   * `optimizer` options apply when the file has none; `expectConfig` makes a different config an
   * ERR_DECOFLOW_CONFIG error). A checkpoint whose weights, EMA or AdamW moments hold NaN or infinity
   * is refused with ERR_DECOFLOW_NON_FINITE unless `allowNonFinite` is true. */
  static load(path: string, options: LoadOptions = {}): Model {
    const { expectConfig, ...rest } = options;
    return new Model(
      native.modelLoad(path, expectConfig ? { ...rest, expectConfig: JSON.stringify(expectConfig) } : rest),
    );
  }

  get #live(): NativeModelHandle {
    if (this.#handle === null) throw decoflowError('ERR_DECOFLOW_DISPOSED', 'Model: the model has been disposed');
    return this.#handle;
  }

  /** @internal The native handle, for the trainer and the sampler. */
  get nativeHandle(): NativeModelHandle {
    return this.#live;
  }

  /** Names (those of the PyTorch reference's state_dict) and shapes, in buffer order. */
  parameters(): ParameterInfo[] {
    return native.modelInfo(this.#live).parameters;
  }

  /** Optimizer steps taken. */
  get step(): number {
    return native.modelInfo(this.#live).step;
  }

  get optimizerOptions(): Required<OptimizerOptions> {
    return JSON.parse(native.modelInfo(this.#live).optimizer);
  }

  /** A copy of a parameter (or of its gradient, EMA or Adam moment). */
  getParameter(name: string, which: Which = 'param'): Tensor {
    return new Tensor(native.modelGet(this.#live, which, name));
  }

  getGradient(name: string): Tensor {
    return this.getParameter(name, 'grad');
  }

  setParameter(name: string, value: Tensor): void {
    native.modelSetParameter(this.#live, name, nativeOf(value, 'Model.setParameter: value'));
  }

  /** The per-stage outputs G_s [B, C, H_s, W_s]. */
  forwardSync(inputs: ModelInputs): Tensor[] {
    return native.modelForwardSync(this.#live, nativeBatch(inputs, 'Model.forwardSync')).map((h) => new Tensor(h));
  }

  /** As forwardSync, off the event loop. */
  async forward(inputs: ModelInputs): Promise<Tensor[]> {
    const handles = await native.modelForward(this.#live, nativeBatch(inputs, 'Model.forward'));
    return handles.map((h) => new Tensor(h));
  }

  /** The DFM loss (no gradients). */
  lossSync(batch: ModelBatch): LossResult {
    return native.modelLossSync(this.#live, nativeBatch(batch, 'Model.lossSync'));
  }

  /** The loss, and every parameter's gradient (kept in the model for step()). */
  lossAndGradSync(batch: ModelBatch): LossResult {
    return native.modelLossAndGradSync(this.#live, nativeBatch(batch, 'Model.lossAndGradSync'));
  }

  /** As lossAndGradSync, off the event loop. */
  lossAndGrad(batch: ModelBatch): Promise<LossResult> {
    try {
      return native.modelLossAndGrad(this.#live, nativeBatch(batch, 'Model.lossAndGrad'));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** One optimizer step on the current gradients: clip, AdamW, EMA. */
  stepSync(): StepResult {
    return native.modelStepSync(this.#live);
  }

  /** Forward, backward and optimizer step in one native call. */
  trainStepSync(batch: ModelBatch): TrainStepResult {
    return native.modelTrainStepSync(this.#live, nativeBatch(batch, 'Model.trainStepSync')) as TrainStepResult;
  }

  trainStep(batch: ModelBatch): Promise<TrainStepResult> {
    try {
      return native.modelTrainStep(this.#live, nativeBatch(batch, 'Model.trainStep')) as Promise<TrainStepResult>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  setOptimizer(options: OptimizerOptions): void {
    native.modelSetOptimizer(this.#live, options);
  }

  /** Writes a safetensors checkpoint atomically (temp file + rename). */
  save(path: string, options: SaveOptions = {}): void {
    native.modelSave(this.#live, path, options);
  }

  dispose(): void {
    if (this.#handle !== null) native.modelDispose(this.#handle);
    this.#handle = null;
  }

  get disposed(): boolean {
    return this.#handle === null;
  }
}
