// decoflow train: trains a DFM (or, with --stages 1, a plain flow-matching) model and writes
// checkpoints, run.json and sample grids to --out. --resume continues a run bit for bit, also after a
// SIGKILL at any moment: run.json (with everything a fresh start needs) is written before the first
// step, every write is atomic and durable, and the temporaries of a killed writer are removed at the
// next start.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BatchLoader, loadDataset } from '../data';
import { decoflowError } from '../errors';
import { removeStaleTemps, writeFileAtomic } from '../files';
import { Model, type ModelConfig, type OptimizerOptions } from '../model';
import { modelConfig, MODEL_SIZES } from '../presets';
import { setThreads } from '../runtime';
import { emaSnapshotPath, saveEmaSnapshot } from '../posthoc-ema';
import { writeSampleGrid } from '../samples';
import { Trainer, trainerDefaults, type TrainerOptions } from '../trainer';
import { DEVICE_FLAGS, deviceOptions, parseArgs, usage, UsageError, type FlagSpec } from './args';
import { EMA_SIGMA_REL_FLAG, emaPowerFromFlags } from './ema';
import { formatSeconds, ProgressBar } from './progress';

// The method's defaults come from the native trainer (one place); the CLI only shows them.
const DEFAULTS = trainerDefaults(2);

export const TRAIN_FLAGS: Record<string, FlagSpec> = {
  data: { kind: 'string', help: "'shapes' (embedded), 'fashion-mnist[:DIR]' or a folder of images", default: 'shapes' },
  'image-size': { kind: 'int', help: 'image size in pixels', default: 32 },
  model: { kind: 'string', help: `model size: ${Object.keys(MODEL_SIZES).join(', ')}`, default: 'tiny' },
  stages: { kind: 'int', help: 'pyramid stages (1 = plain flow matching)', default: 2 },
  grid: { kind: 'int', help: 'token grid per side (sets the patch sizes)', default: 8 },
  steps: { kind: 'int', help: 'training steps', default: 2000 },
  batch: { kind: 'int', help: 'batch size', default: 32 },
  lr: { kind: 'number', help: 'learning rate', default: 1e-3 },
  warmup: { kind: 'int', help: 'linear warm-up steps', default: 100 },
  'weight-decay': { kind: 'number', help: 'AdamW weight decay', default: 0.01 },
  'ema-decay': { kind: 'number', help: 'EMA decay of the weights', default: 0.999 },
  'ema-warmup': { kind: 'bool', help: 'warm the EMA up: step n decays by min(ema-decay, (1+n)/(10+n)) (on; --no-ema-warmup: off)', default: true },
  'ema-power': { kind: 'number', help: 'power-function EMA (EDM2) with this exponent instead of ema-decay; 0: off', default: 0 },
  'ema-sigma-rel': EMA_SIGMA_REL_FLAG,
  'ema-snapshot-every': { kind: 'int', help: 'with --ema-power or --ema-sigma-rel: save the EMA every this many steps to OUT/ema-snapshots, for decoflow ema (0: never)', default: 0 },
  'stage-probs': { kind: 'list', help: `probability of each stage being the active one (default: ${DEFAULTS.stageProbs.join(', ')} for 2 stages)` },
  'stage-probs-final': { kind: 'list', help: 'stage probabilities that --stage-probs moves to linearly (coarse first, then finer)' },
  'stage-probs-steps': { kind: 'int', help: 'steps over which the stage probabilities move to --stage-probs-final' },
  'stage-loss-weights': { kind: 'list', help: 'weight of each stage in the loss (default: 1 each)' },
  'stage-time-shifts': { kind: 'list', help: "per stage, added to the active stage's logit-normal time location (default: 0 each; > 0 trains a stage nearer the data end)" },
  'stage-predictions': { kind: 'string', help: "per stage, what the network predicts: v (velocity, default) or x (the clean level), e.g. v,x" },
  'clean-min-gap': { kind: 'number', help: "the x stages' clamp of 1 - t, in [0.01, 1] (default 0.05; larger: nearer a velocity prediction close to the data)" },
  'prior-location': { kind: 'number', help: `logit-normal location of earlier stages (default ${DEFAULTS.priorLocation})` },
  'stage-choice': { kind: 'string', help: `'sample' (one active stage per sample) or 'batch' (one per batch, the paper's) (default ${DEFAULTS.stageChoice})` },
  'label-dropout': { kind: 'number', help: `probability of dropping a label, for guidance (default ${DEFAULTS.labelDropout})` },
  decomposition: { kind: 'string', help: `'laplacian', 'haar' or 'consistent' (default ${DEFAULTS.decomposition})` },
  seed: { kind: 'int', help: 'seed of the initialisation, the data order and the noise', default: 0 },
  out: { kind: 'string', help: 'output folder', default: 'decoflow-run' },
  'checkpoint-every': { kind: 'int', help: 'steps between checkpoints (0: only at the end)', default: 500 },
  'sample-every': { kind: 'int', help: 'steps between sample grids (0: only at the end)', default: 0 },
  'time-limit': { kind: 'number', help: 'stop (and save) after this many seconds' },
  'sample-cfg': { kind: 'number', help: 'guidance scale of the sample grids', default: 1 },
  threads: { kind: 'int', help: 'CPU threads (default: all cores)' },
  ...DEVICE_FLAGS,
  resume: { kind: 'bool', help: 'continue the run in --out from its checkpoint' },
  help: { kind: 'bool', help: 'this text' },
};

interface RunFile {
  config: ModelConfig;
  trainer: TrainerOptions;
  data: string;
  imageSize: number;
  batch: number;
  seed: number;
  steps: number;
  /** The optimizer options of a fresh start (a checkpoint carries its own). */
  optimizer?: OptimizerOptions;
}

export async function train(argv: string[]): Promise<number> {
  const a = parseArgs(argv, TRAIN_FLAGS);
  if (a.help) {
    process.stdout.write(usage('train', 'Trains a DFM model; writes checkpoint.safetensors, run.json and samples to --out.', TRAIN_FLAGS));
    return 0;
  }
  const positive = (name: string) => {
    const v = a[name] as number;
    if (!(v >= 1)) throw new UsageError(`--${name}: expected a positive integer, got ${v}`);
  };
  ['steps', 'batch', 'stages', 'grid', 'image-size'].forEach(positive);
  const snapshotEvery = a['ema-snapshot-every'] as number;
  if (!(snapshotEvery >= 0)) throw new UsageError(`--ema-snapshot-every: expected an integer >= 0, got ${snapshotEvery}`);
  if (a.threads !== undefined) setThreads(a.threads as number);
  const out = a.out as string;
  const ckpt = path.join(out, 'checkpoint.safetensors');
  const runFile = path.join(out, 'run.json');

  let run: RunFile;
  let model: Model;
  if (a.resume) {
    if (!fs.existsSync(runFile)) throw decoflowError('ERR_DECOFLOW_IO', `--resume: no run.json in ${out}`);
    removeStaleTemps(out);
    run = JSON.parse(fs.readFileSync(runFile, 'utf8')) as RunFile;
    // Runs recorded before stageChoice existed drew one active stage per batch; resume them so.
    run.trainer.stageChoice ??= 'batch';
    run.steps = a.steps as number;
    if (fs.existsSync(ckpt)) model = Model.load(ckpt, { maxBatch: run.batch, expectConfig: run.config, ...deviceOptions(a) });
    else if (run.optimizer)
      model = Model.create(run.config, { maxBatch: run.batch, seed: run.seed, optimizer: run.optimizer, ...deviceOptions(a) });
    else throw decoflowError('ERR_DECOFLOW_IO', `--resume: no checkpoint.safetensors in ${out}`);
  } else {
    const dataset = await loadDataset(a.data as string, { imageSize: a['image-size'] as number, seed: a.seed as number });
    const config = modelConfig({
      size: a.model as string,
      stages: a.stages as number,
      channels: dataset.channels,
      imageSize: dataset.imageSize,
      numClasses: dataset.numClasses,
      grid: a.grid as number,
      stagePredictions: parsePredictions(a['stage-predictions'] as string | undefined, a.stages as number),
      cleanMinGap: a['clean-min-gap'] as number | undefined,
      decomposition: a.decomposition as 'laplacian' | 'haar' | 'consistent' | undefined,
    });
    dataset.dispose();
    run = {
      config,
      trainer: {
        decomposition: a.decomposition as 'laplacian' | 'haar' | 'consistent' | undefined,
        stageProbs: a['stage-probs'] as number[] | undefined,
        stageProbsFinal: a['stage-probs-final'] as number[] | undefined,
        stageProbsSteps: a['stage-probs-steps'] as number | undefined,
        stageLossWeights: a['stage-loss-weights'] as number[] | undefined,
        stageTimeShifts: a['stage-time-shifts'] as number[] | undefined,
        priorLocation: a['prior-location'] as number | undefined,
        stageChoice: (a['stage-choice'] as 'batch' | 'sample' | undefined) ?? DEFAULTS.stageChoice, // recorded: a resume keeps it
        labelDropout: a['label-dropout'] as number | undefined,
        seed: a.seed as number,
      },
      data: a.data as string,
      imageSize: a['image-size'] as number,
      batch: a.batch as number,
      seed: a.seed as number,
      steps: a.steps as number,
      optimizer: {
        lr: a.lr as number,
        warmupSteps: a.warmup as number,
        weightDecay: a['weight-decay'] as number,
        emaDecay: a['ema-decay'] as number,
        emaWarmup: a['ema-warmup'] as boolean,
        emaPower: emaPowerFromFlags(a),
      },
    };
    model = Model.create(config, { maxBatch: run.batch, seed: run.seed, optimizer: run.optimizer, ...deviceOptions(a) });
    removeStaleTemps(out);
    // A fresh run replaces a checkpoint of an earlier run in --out: a resume must never pick it up.
    if (fs.existsSync(ckpt)) {
      process.stderr.write(`decoflow train: a new run in ${out}: removing its old checkpoint.safetensors\n`);
      fs.rmSync(ckpt);
    }
  }
  const dataset = await loadDataset(run.data, { imageSize: run.imageSize, seed: run.seed });
  const trainer = new Trainer(model, run.trainer);
  run.trainer = trainer.options;
  const loader = new BatchLoader(dataset, run.batch, run.seed, { device: model.device });
  loader.skip(model.step);
  await fs.promises.mkdir(out, { recursive: true });

  const writeRun = () => writeFileAtomic(runFile, Buffer.from(JSON.stringify({ ...run, step: model.step }, null, 2)));
  const save = async () => {
    model.save(ckpt);
    await writeRun();
  };
  // Before the first step: a run killed before its first checkpoint resumes from step 0.
  if (!a.resume) await writeRun();
  const samples = async (name: string) =>
    writeSampleGrid(model, path.join(out, `${name}.png`), {
      seed: 1,
      cfg: model.config.numClasses > 0 ? (a['sample-cfg'] as number) : 1,
      previewFile: path.join(out, `${name}-previews.png`),
    });

  const c = run.config;
  process.stderr.write(
    `decoflow train: ${c.stages}-stage ${a.model} model (${model.numParameters.toLocaleString()} parameters, patches ${c.patchSizes.join('/')}) ` +
      `on ${dataset.name} (${dataset.size} images, ${c.channels}x${c.height}x${c.width}, ${c.numClasses} classes), batch ${run.batch}, ` +
      `stage probabilities ${run.trainer.stageProbs!.join('/')}, loss weights ${run.trainer.stageLossWeights!.join('/')}\n`,
  );
  const limit = (a['time-limit'] as number | undefined) ?? Infinity;
  const bar = new ProgressBar(run.steps, model.step, process.stderr, limit);
  const t0 = Date.now();
  const every = { ckpt: a['checkpoint-every'] as number, sample: a['sample-every'] as number };
  const snapshotDir = path.join(out, 'ema-snapshots');
  if (snapshotEvery > 0) {
    if (!(model.optimizerOptions.emaPower > 0))
      throw new UsageError('--ema-snapshot-every: needs a power-function EMA (--ema-power 6.94 or --ema-sigma-rel 0.1, for example); post-hoc EMA combines power EMAs');
    await fs.promises.mkdir(snapshotDir, { recursive: true });
  }
  const snapshot = () => saveEmaSnapshot(model, emaSnapshotPath(snapshotDir, model.step));
  let smooth = NaN;
  const start = model.step;
  while (model.step < run.steps) {
    const batch = await loader.next();
    const s = await trainer.step(batch);
    batch.images.dispose();
    batch.labels.dispose();
    smooth = Number.isNaN(smooth) ? s.loss : 0.98 * smooth + 0.02 * s.loss;
    bar.update(s.step, { loss: smooth.toFixed(4), stage: String(s.activeStage + 1) });
    // Before the checkpoint: a resume from it never misses a snapshot (rewriting one is harmless).
    if (snapshotEvery > 0 && s.step % snapshotEvery === 0) snapshot();
    if (every.ckpt > 0 && s.step % every.ckpt === 0) await save();
    if (every.sample > 0 && s.step % every.sample === 0) await samples(`samples-${String(s.step).padStart(6, '0')}`);
    if ((Date.now() - t0) / 1000 > limit) {
      process.stderr.write(`\ndecoflow train: time limit reached after ${s.step - start} steps\n`);
      break;
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  if (snapshotEvery > 0 && model.step % snapshotEvery !== 0) snapshot();  // the last step's EMA too
  await save();
  await samples('samples');
  process.stderr.write(
    `decoflow train: ${model.step - start} steps in ${formatSeconds(seconds)} (${((model.step - start) / seconds).toFixed(2)} it/s); ` +
      `wrote ${ckpt}, ${path.join(out, 'samples.png')} and ${path.join(out, 'samples-previews.png')}\n`,
  );
  trainer.dispose();
  model.dispose();
  dataset.dispose();
  return 0;
}

// --stage-predictions: 'v' or 'x' per stage, comma-separated.
function parsePredictions(text: string | undefined, stages: number): ('v' | 'x')[] | undefined {
  if (text === undefined) return undefined;
  const p = text.split(',').map((x) => x.trim());
  if (p.length !== stages || p.some((x) => x !== 'v' && x !== 'x'))
    throw new UsageError(`--stage-predictions: expected ${stages} of 'v' or 'x', comma-separated (one per stage), got '${text}'`);
  return p as ('v' | 'x')[];
}
