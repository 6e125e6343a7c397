// The DFM training step (the paper's Algorithm 1) over a Model: decompose, draw the active stage,
// the times and the noise, forward, masked per-stage loss, backward, clipping, AdamW and EMA, all in
// one native call that runs off the event loop.
import type { NativeTrainerHandle } from '../types/native';
import { decoflowError } from './errors';
import type { Batch } from './data';
import { Model } from './model';
import { native } from './native';
import { nativeOf, Tensor } from './tensor';

export type DecompositionKind = 'laplacian' | 'haar' | 'consistent';

export interface TrainerOptions {
  /** The pyramid: the model's (ModelConfig.decomposition, default 'laplacian'); naming another is an error. */
  decomposition?: DecompositionKind;
  /** p_q: the probability that each stage is the active one (default: the paper's [0.9, 0.1] for 2 stages). */
  stageProbs?: number[];
  /**
   * A schedule of p_q: from stageProbs at step 0 linearly to stageProbsFinal at step stageProbsSteps,
   * then constant (e.g. coarse first, then finer: [0.9, 0.1] -> [0.5, 0.5]). Both or neither.
   */
  stageProbsFinal?: number[];
  stageProbsSteps?: number;
  /** t of the active stage ~ LogitNormal(timeLocation, timeScale) (default 0, 1). */
  timeLocation?: number;
  timeScale?: number;
  /** t of earlier stages ~ LogitNormal(priorLocation, priorScale) (default 1.5, 1; the authors' code uses 2). */
  priorLocation?: number;
  priorScale?: number;
  /** Probability that a label is replaced by the null class (default 0.1). */
  labelDropout?: number;
  /**
   * w_s in the loss sum_s w_s * mse_s over the stages s <= Q (default all 1, the paper's loss): a
   * lever for the finer stages, which p_q trains less often. Finite, >= 0, not all 0.
   */
  stageLossWeights?: number[];
  /**
   * Per stage, added to timeLocation when that stage is the active one (default all 0): a finer
   * Laplacian level has a fraction of the coarse level's amplitude, so at equal t it is buried
   * deeper in the noise; a positive shift trains it at times nearer the data end. Each in [-10, 10].
   * Pair it with the sampler's stageTimeShifts.
   */
  stageTimeShifts?: number[];
  /**
   * How Q is drawn: 'sample' (default) draws one active stage per sample from p_q, so every step
   * mixes the stages; 'batch' draws one for the whole batch (the paper's Algorithm 1). The expected
   * loss is the same; the per-sample draw trains better at small budgets (README, "Does DFM beat flow
   * matching"). With 'sample', TrainStepStats.activeStage is the finest active stage in the batch.
   */
  stageChoice?: 'batch' | 'sample';
  /** Seed of the data-side randomness (times, noise, dropout); the step number is the counter. */
  seed?: number;
}

export interface TrainStepStats {
  /** Optimizer steps taken so far (after this one). */
  step: number;
  /** The active stage Q of this batch (0-based, coarse to fine; with stageChoice 'sample', the finest of the batch). */
  activeStage: number;
  /** Sum over active stages of their mean squared velocity errors, times stageLossWeights. */
  loss: number;
  /** Each stage's mean squared velocity error (unweighted; 0 for masked stages). */
  stageLoss: number[];
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
}

export interface TrainingDraws {
  levels: Tensor[];
  noise: Tensor[];
  t: Tensor;
  mask: Tensor;
  labels: Tensor;
  activeStage: number;
}

/** The options a Trainer uses for a model of `stages` stages when given none (decoflow's defaults, from the native trainer). */
export function trainerDefaults(stages: number): Required<TrainerOptions> {
  return native.trainerDefaults(stages) as Required<TrainerOptions>;
}

export class Trainer {
  #handle: NativeTrainerHandle | null;
  readonly model: Model;

  constructor(model: Model, options: TrainerOptions = {}) {
    if (!(model instanceof Model)) throw decoflowError('ERR_DECOFLOW_ARG_TYPE', 'Trainer: model: expected a Model');
    this.model = model;
    this.#handle = native.trainerCreate(model.nativeHandle, options);
  }

  get #live(): NativeTrainerHandle {
    if (this.#handle === null) throw decoflowError('ERR_DECOFLOW_DISPOSED', 'Trainer: the trainer has been disposed');
    return this.#handle;
  }

  /** The options in effect (defaults filled in). */
  get options(): Required<TrainerOptions> {
    return native.trainerOptions(this.#live) as Required<TrainerOptions>;
  }

  /** One training step on images [B, C, H, W] in [-1, 1] and labels i32 [B] (for class-conditional models). */
  step(images: Tensor | Batch, labels?: Tensor): Promise<TrainStepStats> {
    const [im, lb] = images instanceof Tensor ? [images, labels] : [images.images, images.labels];
    return native.trainerStep(this.#live, nativeOf(im, 'trainer.step: images'), lb ? nativeOf(lb, 'trainer.step: labels') : undefined);
  }

  stepSync(images: Tensor | Batch, labels?: Tensor): TrainStepStats {
    const [im, lb] = images instanceof Tensor ? [images, labels] : [images.images, images.labels];
    return native.trainerStepSync(this.#live, nativeOf(im, 'trainer.stepSync: images'), lb ? nativeOf(lb, 'trainer.stepSync: labels') : undefined);
  }

  /**
   * The random draws this trainer makes at optimizer step `step` for these images: the clean
   * pyramid levels, the noise of each stage (zero for masked stages), the times and mask [B, S], the
   * labels after dropout and the active stage. For inspection and for checking against a reference.
   */
  draws(step: number, images: Tensor, labels?: Tensor): TrainingDraws {
    const r = native.trainerDraws(
      this.#live,
      step,
      nativeOf(images, 'trainer.draws: images'),
      labels ? nativeOf(labels, 'trainer.draws: labels') : undefined,
    );
    return {
      levels: r.levels.map((t) => new Tensor(t)),
      noise: r.noise.map((t) => new Tensor(t)),
      t: new Tensor(r.t),
      mask: new Tensor(r.mask),
      labels: new Tensor(r.labels),
      activeStage: r.activeStage,
    };
  }

  /** Releases the trainer's buffers (not the model). */
  dispose(): void {
    if (this.#handle !== null) native.trainerDispose(this.#handle);
    this.#handle = null;
  }
}
