// The rows of `decoflow bench`: what each one measures, its work per call (FLOPs or bytes), the
// measured ceiling it is a share of, how decoflow runs it (through the public API) and what the
// PyTorch peer (python/bench_peer.py) is asked to run for the same row.
//
// A row is named by an id that also carries its size, so any size can be asked for:
//   ceiling:fma | ceiling:copy | ceiling:gemm-bf16     the machine's own ceilings
//   gemm:N | gemm:MxNxK [:blas|:builtin]               matmul, f32 (CPU: the GEMM in use, or the one named)
//   attention:fwd|fwdbwd:BxHxNxD[:causal]             flash attention (f32 on the CPU, bf16 on CUDA)
//   pyramid:laplacian|haar|consistent:BxCxHxW:STAGES[:out]  decompose + recompose, f32
//   train:SIZE[:STAGES] | sample:SIZE[:STAGES]        the DiT (lib/presets.ts sizes), CPU
//   eval:frechet:D | eval:swd:N | eval:pr:N           decoflow eval's metrics, CPU
import { attentionBackwardSync, attentionSync } from './attention';
import { decoflowError } from './errors';
import { evaluate, frechetDistance } from './eval';
import { forwardFlops, trainingFlopsPerStep } from './experiment';
import { getGemm, matmulSync, setGemm } from './gemm';
import { Model, type ModelBatch, type ModelConfig } from './model';
import { native } from './native';
import { MODEL_SIZES, modelConfig } from './presets';
import { pyramid, type PyramidKind } from './pyramid';
import { info } from './runtime';
import { flowSchedule, Sampler } from './sampler';
import { Tensor, type Device } from './tensor';

export type BenchGroup = 'ceiling' | 'gemm' | 'attention' | 'pyramid' | 'train' | 'sample' | 'eval';
export type BenchUnit = 'GFLOP/s' | 'GB/s';
export type CeilingId = 'ceiling:fma' | 'ceiling:copy' | 'ceiling:gemm-bf16';

/** What the PyTorch peer runs for a row (python/bench_peer.py reads these fields). */
export type PeerRow = Record<string, unknown> & { kind: string };

/** One call of a row, ready to be timed, and how to free what it holds. */
export interface RowRunner {
  run(): unknown;
  dispose(): void;
  /** The work of one call when it is only known after setup (the FMA row calibrates its length). */
  work?: number;
}

export interface RowSpec {
  id: string;
  group: BenchGroup;
  /** What is measured, in words. */
  title: string;
  unit: BenchUnit | null;
  /** FLOPs (GFLOP/s rows) or bytes moved (GB/s rows) per call; null for rows timed in ms only. */
  work: number | null;
  ceiling: CeilingId | null;
  /** The PyTorch counterpart, or null when PyTorch has none (the row still runs). */
  peer: PeerRow | null;
  /** Why the row cannot run on this device (it is reported as skipped). */
  skip?: string;
  setup(): Promise<RowRunner> | RowRunner;
}

export interface RowContext {
  device: Device;
  threads: number;
}

/** The inputs of the DiT rows for each model size: image, stages, token grid, batch, samples. */
export const BENCH_MODEL_WORKLOADS: Record<
  string,
  { imageSize: number; channels: number; stages: number; grid: number; numClasses: number; batch: number; samples: number }
> = {
  // the demo's DFM model: 32 px RGB, 2 stages, 8 x 8 tokens
  tiny: { imageSize: 32, channels: 3, stages: 2, grid: 8, numClasses: 8, batch: 32, samples: 32 },
  // the rows of bench/RESULTS.md's training table: 64 tokens, B32 and 256 tokens, B8
  small: { imageSize: 16, channels: 4, stages: 1, grid: 8, numClasses: 10, batch: 32, samples: 32 },
  S: { imageSize: 32, channels: 4, stages: 1, grid: 16, numClasses: 10, batch: 8, samples: 8 },
  B: { imageSize: 32, channels: 4, stages: 1, grid: 16, numClasses: 10, batch: 8, samples: 8 },
  L: { imageSize: 32, channels: 4, stages: 1, grid: 16, numClasses: 10, batch: 8, samples: 8 },
  XL: { imageSize: 32, channels: 4, stages: 1, grid: 16, numClasses: 10, batch: 8, samples: 8 },
};

/** The rows each group runs by default, per device kind. Ceilings always run first. */
export const BENCH_DEFAULT_ROWS: Record<'cpu' | 'cuda', Record<BenchGroup, string[]>> = {
  cpu: {
    ceiling: ['ceiling:fma', 'ceiling:copy'],
    gemm: ['gemm:1024'],
    attention: ['8x4x256x64', '2x4x1024x64', '1x8x4096x64'].flatMap((s) => [`attention:fwd:${s}`, `attention:fwdbwd:${s}`]),
    pyramid: ['64x3x64x64:2', '16x4x128x128:3', '8x3x512x512:4'].map((s) => `pyramid:laplacian:${s}`),
    train: ['train:tiny', 'train:small', 'train:S'],
    sample: ['sample:tiny'],
    eval: ['eval:frechet:256', 'eval:frechet:768', 'eval:swd:1000', 'eval:pr:1000'],
  },
  cuda: {
    ceiling: ['ceiling:copy', 'ceiling:gemm-bf16'],
    gemm: ['gemm:4096'],
    attention: ['16x32x1024x64', '4x32x4096x64', '1x32x16384x64'].flatMap((s) => [`attention:fwd:${s}`, `attention:fwdbwd:${s}`]),
    pyramid: ['64x3x64x64:2', '16x4x128x128:3', '8x3x512x512:4', '32x3x1024x1024:4'].map((s) => `pyramid:laplacian:${s}`),
    // DiT-S/2 and DiT-B/2 (2-stage DFM, 256 tokens) at batch 32 and 128, against PyTorch eager and compiled
    train: ['S', 'B'].flatMap((m) => ['b32', 'b128'].flatMap((b) => [`train:${m}:2:${b}`, `train:${m}:2:${b}:compile`])),
    sample: ['sample:S:2:b32', 'sample:B:2:b32'],
    eval: ['eval:frechet:256', 'eval:swd:1000', 'eval:pr:1000'],
  },
};

/** The groups a plain `decoflow bench` runs (eval is asked for by name). */
export const BENCH_DEFAULT_GROUPS: BenchGroup[] = ['ceiling', 'gemm', 'attention', 'pyramid', 'train', 'sample'];
export const BENCH_GROUPS: BenchGroup[] = [...BENCH_DEFAULT_GROUPS, 'eval'];

const deviceKind = (d: Device): 'cpu' | 'cuda' => (d === 'cpu' ? 'cpu' : 'cuda');

function badRow(id: string, why: string): Error {
  return decoflowError('ERR_DECOFLOW_ARG_VALUE', `bench: row '${id}': ${why}`);
}

function dims(id: string, text: string, count: number): number[] {
  const parts = text.split('x').map(Number);
  if (parts.length !== count || !parts.every((v) => Number.isInteger(v) && v >= 1 && v <= 1 << 20))
    throw badRow(id, `expected ${count} positive integers joined by 'x', got '${text}'`);
  return parts;
}

/** Waits for the device's queued work, so that asynchronous CUDA work is inside the timed call. */
function synchronizer(device: Device): () => void {
  return device === 'cpu' ? () => {} : () => native.benchSynchronize(device);
}

function disposeAll(tensors: Array<Tensor | undefined>): void {
  for (const t of tensors) t?.dispose();
}

// ---------------------------------------------------------------------------------------------
// Work counts (also what the tests check against a hand count)

/** FLOPs of the FMA row: every lane of every chain does one multiply and one add per iteration. */
export function fmaWork(threads: number, iterations: number): number {
  const { lanes, chains } = native.benchInfo();
  return threads * iterations * chains * lanes * 2;
}

/** Attention FLOPs by FlashAttention's count: forward 4 B H N^2 D, backward 2.5x, causal half. */
export function attentionWork(b: number, h: number, n: number, d: number, pass: 'fwd' | 'fwdbwd', causal: boolean): number {
  const forward = (4 * b * h * n * n * d) / (causal ? 2 : 1);
  return pass === 'fwd' ? forward : 3.5 * forward;
}

/** Bytes a decompose + recompose must move: x read and the stages written, then the reverse. */
export function pyramidWork(shape: readonly number[], stages: number, elementBytes = 4): number {
  const n = shape.reduce((a, b) => a * b, 1);
  let levels = 0;
  for (let s = 0; s < stages; s++) levels += n / 4 ** (stages - 1 - s);
  return 2 * elementBytes * (n + levels);
}

/** The model configuration and inputs of a train/sample row (`stages`: other than the size's workload). */
export function benchModel(size: string, stages?: number): { config: ModelConfig; batch: number; samples: number } {
  const w = BENCH_MODEL_WORKLOADS[size];
  if (!w || !MODEL_SIZES[size]) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `bench: model size '${size}': expected one of ${Object.keys(BENCH_MODEL_WORKLOADS).join(', ')}`);
  const config = modelConfig({ size, stages: stages ?? w.stages, channels: w.channels, imageSize: w.imageSize, numClasses: w.numClasses, grid: w.grid });
  return { config, batch: w.batch, samples: w.samples };
}

/** Function evaluations of the default sampler (Euler, no guidance) for `stages` stages. */
export function samplerSteps(stages: number): number[] {
  return native.samplerDefaults(stages).stepsPerStage;
}

// ---------------------------------------------------------------------------------------------
// The rows

const COPY_BYTES = { cpu: 128 << 20, cuda: 1 << 30 };
const GEMM_BF16 = 8192;

function ceilingRow(id: string, what: string, ctx: RowContext): RowSpec {
  const { device } = ctx;
  const kind = deviceKind(device);
  if (what === 'fma') {
    return {
      id,
      group: 'ceiling',
      title: `FMA peak, f32, ${ctx.threads} thread(s), ${native.benchInfo().lanes}-lane vectors (CPU)`,
      unit: 'GFLOP/s',
      work: null,
      ceiling: null,
      peer: null,
      setup() {
        // Grown until one call takes 25 ms or more, so that starting the threads is under 1% of it;
        // each length is timed three times and the fastest counts, because on a loaded machine a
        // descheduled thread makes a short call look long.
        let iterations = 1 << 14;
        for (;;) {
          let ms = Infinity;
          for (let i = 0; i < 3; i++) {
            const t0 = performance.now();
            native.benchFma(ctx.threads, iterations);
            ms = Math.min(ms, performance.now() - t0);
          }
          if (ms >= 25 || iterations >= 2 ** 34) break;
          iterations *= Math.min(16, Math.max(2, Math.ceil(25 / Math.max(ms, 1e-3))));
        }
        return { run: () => native.benchFma(ctx.threads, iterations), dispose: () => {}, work: fmaWork(ctx.threads, iterations) };
      },
    };
  }
  if (what === 'copy') {
    const bytes = COPY_BYTES[kind];
    return {
      id,
      group: 'ceiling',
      title: `memory copy of ${bytes >> 20} MiB (read + write counted), ${kind === 'cpu' ? `${ctx.threads} thread(s)` : 'device to device'}`,
      unit: 'GB/s',
      work: 2 * bytes,
      ceiling: null,
      peer: null,
      setup() {
        const src = Tensor.zeros([bytes / 4], { device });
        const dst = Tensor.zeros([bytes / 4], { device });
        return { run: () => native.benchCopyTensor(dst.native, src.native), dispose: () => disposeAll([src, dst]) };
      },
    };
  }
  if (what === 'gemm-bf16') {
    const n = GEMM_BF16;
    const sync = synchronizer(device);
    return {
      id,
      group: 'ceiling',
      title: `cuBLASLt GEMM ${n}^3, bf16 with f32 accumulation (tensor cores)`,
      unit: 'GFLOP/s',
      work: 2 * n * n * n,
      ceiling: null,
      peer: null,
      skip: kind === 'cpu' ? 'a CUDA ceiling: run with --device cuda' : undefined,
      setup() {
        const a = Tensor.randn([n, n], { seed: 1, dtype: 'bf16', device });
        const b = Tensor.randn([n, n], { seed: 2, dtype: 'bf16', device });
        const c = Tensor.zeros([n, n], { dtype: 'bf16', device });
        return {
          run: () => {
            native.benchGemmBf16(a.native, b.native, c.native);
            sync();
          },
          dispose: () => disposeAll([a, b, c]),
        };
      },
    };
  }
  throw badRow(id, "expected ceiling:fma, ceiling:copy or ceiling:gemm-bf16");
}

function gemmRow(id: string, spec: string, choice: string | undefined, ctx: RowContext): RowSpec {
  const d = spec.includes('x') ? dims(id, spec, 3) : dims(id, spec, 1);
  const [m, n, k] = d.length === 3 ? d : [d[0], d[0], d[0]];
  if (choice !== undefined && choice !== 'blas' && choice !== 'builtin') throw badRow(id, `expected ':blas' or ':builtin' at the end, got ':${choice}'`);
  const { device } = ctx;
  const sync = synchronizer(device);
  const blas = info().blas;
  const gemm = (choice ?? getGemm()) as 'auto' | 'blas' | 'builtin';
  const impl = device !== 'cpu' ? 'cuBLASLt' : gemm === 'builtin' || blas.startsWith('none') ? 'built-in kernel' : blas.split(' ').slice(0, 2).join(' ');
  return {
    id,
    group: 'gemm',
    title: `matmul f32 ${m}x${k} @ ${k}x${n} (${impl})`,
    unit: 'GFLOP/s',
    work: 2 * m * n * k,
    ceiling: device === 'cpu' ? 'ceiling:fma' : 'ceiling:gemm-bf16',
    peer: { kind: 'gemm', m, n, k },
    skip: choice !== undefined && device !== 'cpu' ? 'the GEMM choice is the CPU one' : undefined,
    setup() {
      const before = getGemm();
      setGemm(gemm);
      const a = Tensor.randn([m, k], { seed: 1, device });
      const b = Tensor.randn([k, n], { seed: 2, device });
      return {
        run: () => {
          matmulSync(a, b).dispose();
          sync();
        },
        dispose: () => {
          disposeAll([a, b]);
          setGemm(before);
        },
      };
    },
  };
}

function attentionRow(id: string, pass: string, spec: string, causal: boolean, ctx: RowContext): RowSpec {
  if (pass !== 'fwd' && pass !== 'fwdbwd') throw badRow(id, `expected 'fwd' or 'fwdbwd', got '${pass}'`);
  const shape = dims(id, spec, 4);
  const [b, h, n, d] = shape;
  const { device } = ctx;
  const dtype = device === 'cpu' ? 'f32' : 'bf16';
  const sync = synchronizer(device);
  return {
    id,
    group: 'attention',
    title: `flash attention ${pass === 'fwd' ? 'forward' : 'forward + backward'}, ${dtype}, B${b} H${h} N${n} D${d}${causal ? ', causal' : ''}`,
    unit: 'GFLOP/s',
    work: attentionWork(b, h, n, d, pass, causal),
    ceiling: device === 'cpu' ? 'ceiling:fma' : 'ceiling:gemm-bf16',
    peer: { kind: 'attention', pass, shape, causal, dtype },
    setup() {
      const [q, k, v, dO] = [1, 2, 3, 4].map((seed) => Tensor.randn(shape, { seed, dtype, device }));
      const options = { causal };
      const run =
        pass === 'fwd'
          ? () => {
              const r = attentionSync(q, k, v, options);
              disposeAll([r.o, r.lse]);
              sync();
            }
          : () => {
              const r = attentionSync(q, k, v, options);
              const g = attentionBackwardSync(q, k, v, r.o, r.lse, dO, options);
              disposeAll([r.o, r.lse, g.dq, g.dk, g.dv]);
              sync();
            };
      return { run, dispose: () => disposeAll([q, k, v, dO]) };
    },
  };
}

function pyramidRow(id: string, kind: string, spec: string, stagesText: string, out: boolean, ctx: RowContext): RowSpec {
  if (kind !== 'laplacian' && kind !== 'haar' && kind !== 'consistent') throw badRow(id, `expected 'laplacian', 'haar' or 'consistent', got '${kind}'`);
  const shape = dims(id, spec, 4);
  const [stages] = dims(id, stagesText, 1);
  const { device } = ctx;
  const sync = synchronizer(device);
  const k = kind as PyramidKind;
  return {
    id,
    group: 'pyramid',
    title: `pyramid decompose + recompose, ${kind}, f32 [${shape.join(', ')}], ${stages} stages, ${out ? 'into given outputs' : 'new outputs'}`,
    unit: 'GB/s',
    work: pyramidWork(shape, stages),
    ceiling: 'ceiling:copy',
    // PyTorch has no Haar or consistent pyramid; its Laplacian one allocates, so it is the peer of both Laplacian variants.
    peer: kind === 'laplacian' ? { kind: 'pyramid', shape, stages } : null,
    setup() {
      const x = Tensor.randn(shape, { seed: 1, device });
      if (!out) {
        return {
          run: () => {
            const levels = pyramid.decomposeSync(x, { stages, kind: k });
            pyramid.recomposeSync(levels, { kind: k }).dispose();
            disposeAll(levels);
            sync();
          },
          dispose: () => x.dispose(),
        };
      }
      const levels = pyramid.decomposeSync(x, { stages, kind: k });
      const image = Tensor.zeros(shape, { device });
      return {
        run: () => {
          pyramid.decomposeSync(x, { stages, kind: k, out: levels });
          pyramid.recomposeSync(levels, { kind: k, out: image });
          sync();
        },
        dispose: () => disposeAll([x, image, ...levels]),
      };
    },
  };
}

const CPU_ONLY = 'runs on the CPU only (the metrics have no CUDA path in this version)';

// Guidance scale of the sampling rows on a GPU (two model evaluations per step, as a guided run makes).
const CUDA_SAMPLE_CFG = 2;

/** Random inputs and targets for one training step of `config` (fixed seeds), the images on `device`. */
function trainBatch(config: ModelConfig, batch: number, device: Device = 'cpu'): ModelBatch {
  const S = config.stages;
  const x: Tensor[] = [];
  const targets: Tensor[] = [];
  for (let s = 0; s < S; s++) {
    const shape = [batch, config.channels, config.height >> (S - 1 - s), config.width >> (S - 1 - s)];
    const onDevice = (t: Tensor) => {
      if (device === 'cpu') return t;
      const moved = t.to(device);
      t.dispose();
      return moved;
    };
    x.push(onDevice(Tensor.randn(shape, { seed: 1 + s })));
    targets.push(onDevice(Tensor.randn(shape, { seed: 100 + s })));
  }
  const t = Tensor.from(Float32Array.from({ length: batch * S }, (_, i) => (i * 0.37) % 1), [batch, S]);
  const labels = Tensor.from(Int32Array.from({ length: batch }, (_, i) => i % ((config.numClasses ?? 0) + 1)), [batch], { dtype: 'i32' });
  return { x, targets, t, labels };
}

// A model row's options after SIZE: the stages, `bN` (the batch: images per step, or samples), and
// `compile` (the PyTorch peer is torch.compile'd; decoflow runs the same).
function modelOptions(id: string, rest: string[]): { stages?: number; batch?: number; compile: boolean } {
  const o: { stages?: number; batch?: number; compile: boolean } = { compile: false };
  for (const part of rest) {
    if (part === 'compile') o.compile = true;
    else if (/^b\d+$/.test(part)) o.batch = dims(id, part.slice(1), 1)[0];
    else if (/^\d+$/.test(part) && o.stages === undefined) o.stages = dims(id, part, 1)[0];
    else throw badRow(id, `expected STAGES, bBATCH or 'compile' after the size, got '${part}'`);
  }
  return o;
}

function modelRow(id: string, what: 'train' | 'sample', size: string, rest: string[], ctx: RowContext): RowSpec {
  if (!BENCH_MODEL_WORKLOADS[size]) throw badRow(id, `model size: expected one of ${Object.keys(BENCH_MODEL_WORKLOADS).join(', ')}, got '${size}'`);
  const opts = modelOptions(id, rest);
  let workload: ReturnType<typeof benchModel>;
  try {
    workload = benchModel(size, opts.stages);
  } catch (e) {
    throw badRow(id, (e as Error).message.replace(/^bench: /, ''));
  }
  const { config } = workload;
  const batch = opts.batch ?? workload.batch, samples = opts.batch ?? workload.samples;
  // On a GPU: decoflow in bf16 (its default there), the peer under bf16 autocast.
  const onGpu = ctx.device !== 'cpu';
  const modelOpts = { seed: 0, device: ctx.device, precision: onGpu ? ('bf16' as const) : ('f32' as const) };
  const peerOpts = { precision: modelOpts.precision, compile: opts.compile };
  const ceiling: CeilingId = onGpu ? 'ceiling:gemm-bf16' : 'ceiling:fma';
  const shape = `'${size}' (${config.hidden} wide, ${config.depth} deep, ${config.stages} stage(s), ${config.height} px, ${
    (config.height / config.patchSizes[config.stages - 1]) ** 2
  } tokens)`;
  if (what === 'train') {
    return {
      id,
      group: 'train',
      title: `DiT training step ${shape}, batch ${batch}: forward, backward, clipping, AdamW, EMA`,
      unit: 'GFLOP/s',
      work: trainingFlopsPerStep(config, batch),
      ceiling,
      peer: { kind: 'train', config, batch, ...peerOpts },
      setup() {
        const model = Model.create(config, { maxBatch: batch, ...modelOpts });
        const data = trainBatch(config, batch, ctx.device);
        return {
          run: () => model.trainStepSync(data),
          dispose: () => {
            disposeAll([...data.x, ...data.targets, data.t, data.labels]);
            model.dispose();
          },
        };
      },
    };
  }
  const steps = samplerSteps(config.stages);
  const classes = config.numClasses ?? 0;
  const cfg = onGpu && classes > 0 ? CUDA_SAMPLE_CFG : 1;
  const nfe = steps.reduce((a, b) => a + b, 0) * (cfg !== 1 ? 2 : 1);
  const labels = classes > 0 ? Array.from({ length: samples }, (_, i) => i % classes) : undefined;
  return {
    id,
    group: 'sample',
    title: `DiT sampling ${shape}, ${samples} images, Euler, ${nfe} evaluations [${steps.join(', ')}]${cfg !== 1 ? `, cfg ${cfg}` : ''}`,
    unit: 'GFLOP/s',
    work: nfe * samples * forwardFlops(config),
    ceiling,
    peer: { kind: 'sample', config, n: samples, labels, cfg, schedule: flowSchedule(config.stages, steps), ...peerOpts },
    setup() {
      const model = Model.create(config, { maxBatch: samples, ...modelOpts });
      const sampler = new Sampler(model);
      return {
        run: async () => {
          const r = await sampler.sample({ n: samples, labels, stepsPerStage: steps, seed: 1, cfg });
          disposeAll([r.images, ...r.levels]);
        },
        dispose: () => model.dispose(),
      };
    },
  };
}

/** A random d x d covariance (a a^T / k of a [d, k] normal matrix), as in bench/RESULTS.md's metric rows. */
function randomCovariance(d: number, k: number, seed: number): Tensor {
  const a = Tensor.randn([d, k], { seed });
  const x = a.dataSync() as Float32Array;
  const at = new Float32Array(d * k);
  for (let i = 0; i < d; i++) for (let j = 0; j < k; j++) at[j * d + i] = x[i * k + j];
  const t = Tensor.from(at, [k, d]);
  const product = matmulSync(a, t);
  const c = (product.dataSync() as Float32Array).map((v) => v / k);
  disposeAll([a, t, product]);
  return Tensor.from(c, [d, d]);
}

function evalRow(id: string, metric: string, sizeText: string, ctx: RowContext): RowSpec {
  const [size] = dims(id, sizeText, 1);
  const skip = ctx.device === 'cpu' ? undefined : CPU_ONLY;
  const base = { id, group: 'eval' as const, unit: null, work: null, ceiling: null, skip };
  if (metric === 'frechet') {
    return {
      ...base,
      title: `Frechet distance of two ${size}-d Gaussians (float64 eigensolver)`,
      peer: { kind: 'eval', metric, size },
      setup() {
        const [ca, cb] = [randomCovariance(size, size + 50, 1), randomCovariance(size, size + 60, 2)];
        const [ma, mb] = [Tensor.randn([size], { seed: 3 }), Tensor.randn([size], { seed: 4 })];
        return { run: () => frechetDistance(ma, ca, mb, cb), dispose: () => disposeAll([ca, cb, ma, mb]) };
      },
    };
  }
  if (metric === 'swd' || metric === 'pr') {
    return {
      ...base,
      title:
        metric === 'swd'
          ? `SWD of ${size} vs ${size} grey 32 px images (3 levels, 64 patches, 512 projections)`
          : `k-NN precision and recall of ${size} vs ${size} images, pix16 features, k = 3`,
      peer: { kind: 'eval', metric, size },
      setup() {
        const a = Tensor.randn([size, 1, 32, 32], { seed: 5 });
        const b = Tensor.randn([size, 1, 32, 32], { seed: 6 });
        const options = metric === 'swd' ? { frechet: [], precisionRecall: false } : { swd: false, frechet: [], prFeature: 'pix16' as const };
        return { run: () => evaluate(a, b, options), dispose: () => disposeAll([a, b]) };
      },
    };
  }
  throw badRow(id, `expected eval:frechet:D, eval:swd:N or eval:pr:N`);
}

/** The row an id names (see the top of this file); throws ERR_DECOFLOW_ARG_VALUE for anything else. */
export function parseRow(id: string, ctx: RowContext): RowSpec {
  if (typeof id !== 'string') throw decoflowError('ERR_DECOFLOW_ARG_TYPE', `bench: a row must be a string, got ${typeof id}`);
  const p = id.split(':');
  const group = p[0] as BenchGroup;
  const arity = (min: number, max = min) => {
    if (p.length < min || p.length > max) throw badRow(id, `expected ${ROW_FORMS[group] ?? 'a known row'}`);
  };
  switch (group) {
    case 'ceiling':
      arity(2);
      return ceilingRow(id, p[1], ctx);
    case 'gemm':
      arity(2, 3);
      return gemmRow(id, p[1], p[2], ctx);
    case 'attention':
      arity(3, 4);
      if (p.length === 4 && p[3] !== 'causal') throw badRow(id, `expected ':causal' at the end, got ':${p[3]}'`);
      return attentionRow(id, p[1], p[2], p.length === 4, ctx);
    case 'pyramid':
      arity(4, 5);
      if (p.length === 5 && p[4] !== 'out') throw badRow(id, `expected ':out' at the end, got ':${p[4]}'`);
      return pyramidRow(id, p[1], p[2], p[3], p.length === 5, ctx);
    case 'train':
    case 'sample':
      arity(2, 5);
      return modelRow(id, group, p[1], p.slice(2), ctx);
    case 'eval':
      arity(3);
      return evalRow(id, p[1], p[2], ctx);
    default:
      throw badRow(id, `unknown row or group (groups: ${BENCH_GROUPS.join(', ')}; rows look like ${Object.values(ROW_FORMS).join(', ')})`);
  }
}

const ROW_FORMS: Record<string, string> = {
  ceiling: 'ceiling:fma|copy|gemm-bf16',
  gemm: 'gemm:N or gemm:MxNxK, then optionally :blas or :builtin',
  attention: 'attention:fwd|fwdbwd:BxHxNxD[:causal]',
  pyramid: 'pyramid:laplacian|haar|consistent:BxCxHxW:STAGES[:out]',
  train: 'train:SIZE[:STAGES][:bBATCH][:compile]',
  sample: 'sample:SIZE[:STAGES][:bBATCH][:compile]',
  eval: 'eval:frechet|swd|pr:N',
};

/**
 * The rows to run for a selection of ids and group names (default: the default groups), ceilings
 * first and each row once.
 */
export function resolveRows(selection: readonly string[] | undefined, ctx: RowContext): RowSpec[] {
  const defaults = BENCH_DEFAULT_ROWS[deviceKind(ctx.device)];
  const wanted = selection && selection.length ? selection : BENCH_DEFAULT_GROUPS;
  const ids: string[] = [...defaults.ceiling];
  for (const w of wanted) ids.push(...(BENCH_GROUPS.includes(w as BenchGroup) ? defaults[w as BenchGroup] : [w]));
  const specs = [...new Set(ids)].map((id) => parseRow(id, ctx));
  return [...specs.filter((s) => s.group === 'ceiling'), ...specs.filter((s) => s.group !== 'ceiling')];
}
