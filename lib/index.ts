// decoflow: Decomposable Flow Matching for Node.js.
export { Tensor } from './tensor';
export type { DType, Device, TypedArray, TensorOptions } from './tensor';
export { backends, info, setThreads, getThreads, memory, resetPeakMemory, releaseCachedMemory } from './runtime';
export type { Backend, Info, DeviceMemory, CpuLevelName } from './runtime';
export { matmul, matmulSync, setGemm, getGemm } from './gemm';
export type { MatmulOptions } from './gemm';
export { attention, attentionSync, attentionBackward, attentionBackwardSync } from './attention';
export type { AttentionOptions, AttentionOutput, AttentionGrads } from './attention';
export { decoflowError } from './errors';
export type { DecoflowError, ErrorCode } from './errors';
export { shapesDataset, tensorDataset, fashionMnist, imageFolder, loadDataset, BatchLoader, FASHION_MNIST_DIR } from './data';
export type { Batch, BatchLoaderOptions, Dataset } from './data';
export { grid, saveGrid, saveImages, readImage, toPixels, writeFileAtomic } from './image';
export { removeStaleTemps } from './files';
export type { GridOptions } from './image';
export { Model } from './model';
export type {
  ModelConfig,
  ModelOptions,
  ModelInputs,
  ModelBatch,
  OptimizerOptions,
  LossResult,
  StepResult,
  TrainStepResult,
  ParameterInfo,
  SaveOptions,
  LoadOptions,
} from './model';
export { readSafetensors, readSafetensorsMetadata, writeSafetensors } from './safetensors';
export { gammaOfSigmaRel, sigmaRelOfGamma, MAX_SIGMA_REL, profileInnerProduct, posthocEmaCoefficients, posthocEma, saveEmaSnapshot, readSnapshotProfile, emaSnapshotPath } from './posthoc-ema';
export type { EmaProfile, PosthocFit, PosthocEmaOptions, PosthocEmaResult } from './posthoc-ema';
export type { SafetensorsContents } from './safetensors';
export { pyramid } from './pyramid';
export type { PyramidKind, PyramidOptions, DecomposeOptions, RecomposeOptions } from './pyramid';
export { benchCopy } from './runtime';
export { Trainer, trainerDefaults } from './trainer';
export type { TrainerOptions, TrainStepStats, TrainingDraws, DecompositionKind } from './trainer';
export { Sampler, flowSchedule, samplerDefaults } from './sampler';
export type { SampleOptions, SampleResult, Schedule, Solver } from './sampler';
export { MODEL_SIZES, modelConfig, patchSizesFor } from './presets';
export { writeSampleGrid, gridLabels, interleave } from './samples';
export type { SampleGridOptions } from './samples';
export { evaluate, evaluateSync, evalFeatures, frechetDistance, symmetricEigen, loadImageSet, readNpy, formatEvalTable } from './eval';
export type { EvalFeature, EvalOptions, EvalResult, EvalReport, ImageSetOptions } from './eval';
export { runExperiment, runArm, loadHeldOut, parseArm, forwardFlops, trainingFlopsPerStep, chartSvg, drawCharts, drawGrids } from './experiment';
export type { DrawGridsOptions } from './experiment';
export type { Arm, ArmResult, EvalPoint, HeldOut, TestResult, ExperimentOptions } from './experiment';
export { bench, measure, stats, describeMachine } from './bench';
export type { BenchOptions, BenchProgress } from './bench';
export { BENCH_SCHEMA, validateBenchReport, compareBaseline, formatBenchTable, formatBenchHeader, formatBaselineComparison } from './bench-report';
export type { BenchReport, BenchRow, BenchStats, BenchPeerResult, BenchMachine, BaselineComparison, BaselineRow } from './bench-report';
export { parseRow, resolveRows, attentionWork, pyramidWork, fmaWork, benchModel, BENCH_DEFAULT_ROWS, BENCH_GROUPS, BENCH_MODEL_WORKLOADS } from './bench-rows';
export type { BenchGroup, BenchUnit, CeilingId, RowSpec } from './bench-rows';
export { findTorchPeer } from './bench-peer';
export type { BenchTiming, PeerInfo } from './bench-peer';
