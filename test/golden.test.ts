// Bit-identity of training and sampling across refactors of the native code. The fixture
// (test/fixtures/golden-runs.json) was recorded once, before the op-interface refactor, by running
// this file with DECOFLOW_WRITE_GOLDEN=1: 50 training steps for S = 1, 2, 3 with the Laplacian and
// the Haar pyramid (every loss, gradient norm and active stage, then a hash of the parameters and
// the EMA), and a guided sample of each trained model (hashes of the images, levels and previews).
//
// The bits depend on the CPU's instruction set, on the build (-march=native, or the portable
// prebuilt addon), on the CPU level of the kernels in use (native/ops/cpu_level.h: a native build
// compiles its best level for this machine, which gives exactly the kernels the fixture was made
// with; a forced lower level or the portable build gives other bits) and on the BLAS, so the
// fixture records all of them. On that kind of machine every number
// must be the same to the bit; elsewhere the test still runs everything and checks the losses to
// 1e-3 relative (rounding differences grow over 50 steps), and says that the bits were not compared.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { info, Model, Sampler, Tensor, Trainer } from '../lib';
import type { DecompositionKind, ModelConfig, TrainerOptions } from '../lib';

const FIXTURE = path.join(__dirname, 'fixtures', 'golden-runs.json');
const WRITE = process.env.DECOFLOW_WRITE_GOLDEN === '1';
const STEPS = 50;

interface RunRecord {
  losses: number[];
  gradNorms: number[];
  activeStages: number[];
  stageLosses: number[][];
  params: string;
  ema: string;
  samples: Record<string, string>;
}
interface Fixture {
  machine: string;
  runs: Record<string, RunRecord>;
}

/** What the bits depend on: the CPU model and vector extensions, the BLAS, the build's target. */
function machineKey(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  let flags = '';
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags')) ?? '';
    flags = ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl'].filter((f) => line.split(/\s+/).includes(f)).join(',');
  } catch {
    flags = 'no /proc/cpuinfo';
  }
  const i = info();
  return `${cpu} | ${flags} | ${i.blas} | coretype ${process.env.OPENBLAS_CORETYPE ?? '-'} | native ${i.nativeArch} | cpu level ${i.cpuLevel}`;
}

const runs: Array<{ name: string; config: ModelConfig; trainer: TrainerOptions; batch: number; sampler: Record<string, unknown> }> = [];
const bases: Array<{ stages: number; config: ModelConfig; trainer: TrainerOptions; batch: number; sampler: Record<string, unknown> }> = [
  {
    stages: 1,
    config: { stages: 1, channels: 3, height: 8, width: 8, patchSizes: [2], hidden: 32, depth: 2, heads: 4, numClasses: 4, freqDim: 32 },
    trainer: { seed: 5 },
    batch: 4,
    sampler: { stepsPerStage: [6], solver: 'euler', cfg: 2 },
  },
  {
    stages: 2,
    config: { stages: 2, channels: 2, height: 16, width: 16, patchSizes: [2, 4], hidden: 48, depth: 2, heads: 3, numClasses: 5, stageEmbedding: true, freqDim: 24 },
    trainer: { stageProbs: [0.5, 0.5], labelDropout: 0.5, seed: 9 },
    batch: 4,
    sampler: { stepsPerStage: [4, 3], thresholds: [0.8], solver: 'heun', cfg: 2.5, guidanceInterval: [0.1, 0.9] },
  },
  {
    stages: 3,
    config: { stages: 3, channels: 1, height: 16, width: 16, patchSizes: [1, 2, 4], hidden: 32, depth: 2, heads: 2, freqDim: 16 },
    trainer: { stageProbs: [0.2, 0.3, 0.5], timeLocation: 0.3, priorLocation: 2.0, stageLossWeights: [1, 2.5, 0.5], seed: 2 },
    batch: 3,
    sampler: { stepsPerStage: [3, 2, 2], thresholds: [0.7, 0.9], solver: 'midpoint' },
  },
];
for (const b of bases)
  for (const decomposition of ['laplacian', 'haar'] as DecompositionKind[])
    runs.push({ name: `S=${b.stages} ${decomposition}`, config: { ...b.config, decomposition }, trainer: { ...b.trainer, decomposition }, batch: b.batch, sampler: { ...b.sampler, decomposition } });

function images(b: number, c: number, h: number, w: number, seed: number): Tensor {
  const x = Tensor.randn([b, c, h, w], { seed }).dataSync() as Float32Array;
  for (let i = 0; i < x.length; i++) x[i] = Math.tanh(0.5 * x[i] + Math.sin(i * 0.05));
  return Tensor.from(x, [b, c, h, w]);
}

function hash(tensors: Tensor[]): string {
  const h = createHash('sha256');
  for (const t of tensors) {
    const d = t.dataSync() as Float32Array;
    h.update(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}

async function record(run: (typeof runs)[number]): Promise<RunRecord> {
  const model = Model.create(run.config, {
    maxBatch: run.batch,
    seed: 3,
    // The EMA rule of the recording (fixed decay; warm-up came later and is tested in ema.test.ts).
    optimizer: { lr: 3e-3, warmupSteps: 5, emaDecay: 0.9, emaWarmup: false },
  });
  // The recording drew one active stage per batch (the default then).
  const trainer = new Trainer(model, { stageChoice: 'batch', ...run.trainer });
  const k = run.config.numClasses ?? 0;
  const r: RunRecord = { losses: [], gradNorms: [], activeStages: [], stageLosses: [], params: '', ema: '', samples: {} };
  for (let step = 0; step < STEPS; step++) {
    const x = images(run.batch, run.config.channels, run.config.height, run.config.width, 100 + step);
    const labels = k ? Tensor.from(Int32Array.from({ length: run.batch }, (_, i) => (i + step) % k), [run.batch], { dtype: 'i32' }) : undefined;
    const s = step % 2 ? trainer.stepSync(x, labels) : await trainer.step(x, labels);
    r.losses.push(s.loss);
    r.gradNorms.push(s.gradNorm);
    r.activeStages.push(s.activeStage);
    r.stageLosses.push(s.stageLoss);
  }
  const names = model.parameters().map((p) => p.name);
  r.params = hash(names.map((n) => model.getParameter(n, 'param')));
  r.ema = hash(names.map((n) => model.getParameter(n, 'ema')));
  const n = 5;
  const out = await new Sampler(model).sample({
    n,
    seed: 7,
    labels: k ? Array.from({ length: n }, (_, i) => i % (k + 1)) : undefined,
    previews: true,
    intermediates: true,
    ...run.sampler,
  });
  r.samples.images = hash([out.images]);
  r.samples.levels = hash(out.levels);
  r.samples.previews = hash(out.previews);
  r.samples.intermediates = hash(out.intermediates);
  const raw = await new Sampler(model).sample({ n: 2, seed: 8, ema: false, labels: k ? [0, k] : undefined, ...run.sampler, cfg: 1 });
  r.samples.raw = hash([raw.images]);
  model.dispose();
  trainer.dispose();
  return r;
}

jest.setTimeout(120000);

if (WRITE) {
  test('write the golden fixture', async () => {
    const fixture: Fixture = { machine: machineKey(), runs: {} };
    for (const run of runs) fixture.runs[run.name] = await record(run);
    fs.mkdirSync(path.dirname(FIXTURE), { recursive: true });
    fs.writeFileSync(FIXTURE, JSON.stringify(fixture, null, 1) + '\n');
    expect(Object.keys(fixture.runs)).toHaveLength(runs.length);
  });
} else {
  const fixture = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as Fixture;
  const sameMachine = fixture.machine === machineKey();
  if (!sameMachine)
    console.log(`golden runs: this machine (${machineKey()}) is not the fixture's (${fixture.machine}); losses checked to 1e-3, bits not compared`);

  describe.each(runs)('50 training steps and a sample are unchanged: $name', (run) => {
    test(sameMachine ? 'bit-identical to the recorded run' : 'within 1e-3 of the recorded run', async () => {
      const want = fixture.runs[run.name];
      expect(want).toBeDefined();
      const got = await record(run);
      expect(got.activeStages).toEqual(want.activeStages);
      if (sameMachine) {
        expect(got.losses).toEqual(want.losses);
        expect(got.gradNorms).toEqual(want.gradNorms);
        expect(got.stageLosses).toEqual(want.stageLosses);
        expect(got.params).toBe(want.params);
        expect(got.ema).toBe(want.ema);
        expect(got.samples).toEqual(want.samples);
      } else {
        got.losses.forEach((l, i) => expect(Math.abs(l - want.losses[i]) / want.losses[i]).toBeLessThan(1e-3));
      }
    });
  });
}
