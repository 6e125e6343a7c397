// The multi-stage flow integrator: stage k ramps from 0 to its threshold while later stages wait
// at t = 0 (masked), earlier stages follow in lockstep, and the final image is the recomposed
// pyramid. Euler (the paper's), Heun and midpoint; classifier-free guidance. Runs in native code
// off the event loop, reports progress per step and stops promptly on an AbortSignal.
import type { NativeProgress } from '../types/native';
import { decoflowError } from './errors';
import { Model } from './model';
import { native } from './native';
import { Tensor } from './tensor';
import type { DecompositionKind } from './trainer';

export type Solver = 'euler' | 'heun' | 'midpoint';

export interface SampleOptions {
  /** Number of images (default 1). */
  n?: number;
  /**
   * Class per image (class-conditional models; numClasses is the null class). Default: the classes
   * in turn, image i of class i % numClasses (as the CLI does).
   */
  labels?: number[];
  seed?: number;
  /** Steps of each phase (default: [30, 10] for 2 stages, [40] for 1). */
  stepsPerStage?: number[];
  /** tau of every stage but the last, each in (0, 1) (default 0.7). */
  thresholds?: number[];
  /**
   * Per stage, the spacing of its steps (default all 0: even in t). With shift m a stage's steps are
   * even in logit(t) - m, so m > 0 packs them towards the data end (where a low-amplitude fine level
   * is resolved) and its ramp still ends at its threshold. Each in [-10, 10]. The trainer's
   * stageTimeShifts is the training-side counterpart; the values need not match (the README's study:
   * a fine stage trained with 1.5 sampled best with 0.75).
   */
  stageTimeShifts?: number[];
  /**
   * Per stage, how much noise each of its Euler steps re-draws, each in [0, 1] (default all 0: the
   * deterministic ODE). A step from t to t1 estimates the clean level X = x + (1 - t) v and the noise
   * N = x - t v and lands on t1 X + (1 - t1) (a N + e z) with fresh noise z: e is eta times the
   * standard deviation of x_t1 given x_t and X (relative to 1 - t1) and a^2 + e^2 = 1. 1 is ancestral
   * sampling (DDPM's), as DDIM's eta. Costs no model evaluations; solver 'euler' only.
   */
  stageEta?: number[];
  solver?: Solver;
  /** Guidance scale w: v = v_uncond + w (v_cond - v_uncond); 1 = none (default). */
  cfg?: number;
  /** Guidance only while the newest stage's t is in [lo, hi] (default [0, 1]). */
  guidanceInterval?: [number, number];
  /** Sample with the EMA weights (default true) or the raw parameters. */
  ema?: boolean;
  /** The pyramid: the model's (ModelConfig.decomposition, default 'laplacian'); naming another is an error. */
  decomposition?: DecompositionKind;
  /** Also return the coarse-to-fine previews (partial recompositions). */
  previews?: boolean;
  /** Also return the image at the end of every phase. */
  intermediates?: boolean;
  onProgress?: (p: NativeProgress) => void;
  signal?: AbortSignal;
}

export interface SampleResult {
  /** [n, C, H, W] in about [-1, 1]. */
  images: Tensor;
  /** The generated pyramid levels, coarse to fine. */
  levels: Tensor[];
  /** previews[k]: stages 1..k+1 recomposed at full size (when requested). */
  previews: Tensor[];
  /** The image at the end of each phase (when requested). */
  intermediates: Tensor[];
}

export interface Schedule {
  /** times[i][s]: the time of stage s before step i (row total is the end). */
  times: number[][];
  /** The newest active stage during step i (later stages are masked). */
  newestStage: number[];
}

/** The sampler's default steps per phase and thresholds for `stages` stages (from the native sampler). */
export function samplerDefaults(stages: number): { stepsPerStage: number[]; thresholds: number[] } {
  const d = native.samplerDefaults(stages);
  return { stepsPerStage: d.stepsPerStage, thresholds: d.thresholds };
}

/** The table of per-stage times of a sampling run (the lockstep rule of docs/METHOD.md). */
export function flowSchedule(stages: number, stepsPerStage?: number[], thresholds?: number[], stageTimeShifts?: number[]): Schedule {
  const d = samplerDefaults(stages);
  return native.flowSchedule(stages, stepsPerStage ?? d.stepsPerStage, thresholds ?? d.thresholds, stageTimeShifts);
}

/** Labels 0, 1, ..., classes - 1, 0, 1, ... for n images: the default of a class-conditional model. */
export function cycledLabels(n: number, classes: number): number[] {
  return Array.from({ length: n }, (_, i) => i % classes);
}

export class Sampler {
  constructor(readonly model: Model) {
    if (!(model instanceof Model)) throw decoflowError('ERR_DECOFLOW_ARG_TYPE', 'Sampler: model: expected a Model');
  }

  /** The defaults for this model's number of stages. */
  get defaults(): { stepsPerStage: number[]; thresholds: number[] } {
    return samplerDefaults(this.model.config.stages);
  }

  schedule(options: Pick<SampleOptions, 'stepsPerStage' | 'thresholds' | 'stageTimeShifts'> = {}): Schedule {
    return flowSchedule(this.model.config.stages, options.stepsPerStage, options.thresholds, options.stageTimeShifts);
  }

  async sample(options: SampleOptions = {}): Promise<SampleResult> {
    const { onProgress, signal, ...rest } = options;
    if (signal?.aborted) throw decoflowError('ABORT_ERR', 'sample: the operation was aborted');
    const classes = this.model.config.numClasses;
    const n = rest.n ?? 1;
    // (an invalid n is left for the native checks to report)
    if (classes > 0 && rest.labels === undefined && Number.isInteger(n) && n > 0) rest.labels = cycledLabels(n, classes);
    const job = native.modelSample(this.model.nativeHandle, rest, onProgress);
    const abort = () => native.cancelJob(job.cancel);
    signal?.addEventListener('abort', abort, { once: true });
    try {
      const r = await job.promise;
      return {
        images: new Tensor(r.images),
        levels: r.levels.map((t) => new Tensor(t)),
        previews: r.previews.map((t) => new Tensor(t)),
        intermediates: r.intermediates.map((t) => new Tensor(t)),
      };
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }
}
