// Two builds of decoflow side by side: flash attention forward + backward, the pyramid, and the DFM
// training step and sampling of the tiny and small models, each row timed in child processes that alternate between build A and build B for several
// rounds (so a noisy machine slows both alike), then B / A per row. For checking that a change of the
// native code costs nothing: keep a copy of the build before the change (its dist/ folder and
// package.json, and its decoflow.node) and compare.
//
//   node bench/ab.js --a /path/to/old --b . [--rounds 5] [--threads 2] [--rows 'tiny train,pyramid']
//                    [--a-addon file.node] [--b-addon file.node] [--cpu]
//
// --cpu times each call by the process's CPU time (user + system, all threads) instead of the wall
// clock: on a machine that others load, a process that waits for a core is not charged for it. Use it
// with --threads 1 (with more threads, idle pool workers that spin would count).
//
// A build folder holds dist/index.cjs and package.json; its addon is build/Release/decoflow.node or,
// when that is missing, decoflow.node in the folder itself, unless --a-addon / --b-addon name one
// (e.g. the prebuilt prebuilds/linux-x64/decoflow.glibc.node against a -march=native build).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROWS = {
  // q, k, v [8, 4, 256, 64]: the attention of a 16 x 16-token image, forward then backward
  'attention f+b': { kind: 'attention', shape: [8, 4, 256, 64] },
  // a [16, 3, 256, 256] batch into 3 Laplacian stages and back
  pyramid: { kind: 'pyramid', shape: [16, 3, 256, 256], stages: 3 },
  'tiny train': { size: 'tiny', kind: 'train', batch: 32 },
  'tiny sample': { size: 'tiny', kind: 'sample', batch: 32 },
  'small train': { size: 'small', kind: 'train', batch: 32 },
  'small sample': { size: 'small', kind: 'sample', batch: 16 },
};

// The median ms of a call by `clock` (ms now): one warm-up, then at least 3 calls and 2.5 s.
function timer(clock) {
  return async (fn, { warmup = 1, minRuns = 3, minMs = 2500 } = {}) => {
    for (let i = 0; i < warmup; i++) await fn();
    const samples = [];
    let total = 0;
    while (samples.length < minRuns || total < minMs) {
      const c0 = clock();
      await fn();
      samples.push(clock() - c0);
      total += samples[samples.length - 1];
    }
    samples.sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)];
  };
}
// CPU time: user + system, every thread of the process.
const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
const wallMs = () => Number(process.hrtime.bigint()) / 1e6;

// In a child: one row on one build, printing the median ms of a call as JSON.
async function measure(rowName, threads) {
  const d = require(process.env.DECOFLOW_AB_DIST);
  d.setThreads(threads);
  const row = ROWS[rowName];
  const time = timer(process.env.DECOFLOW_AB_CPU ? cpuMs : wallMs);
  if (row.kind === 'attention' || row.kind === 'pyramid') {
    const x = d.Tensor.randn(row.shape, { seed: 1 });
    let fn;
    if (row.kind === 'attention') {
      const [k, v, dO] = [2, 3, 4].map((seed) => d.Tensor.randn(row.shape, { seed }));
      fn = async () => {
        const out = await d.attention(x, k, v);
        const g = await d.attentionBackward(x, k, v, out.o, out.lse, dO);
        for (const t of [out.o, out.lse, g.dq, g.dk, g.dv]) t.dispose();
      };
    } else {
      fn = async () => {
        const levels = await d.pyramid.decompose(x, { stages: row.stages });
        const back = await d.pyramid.recompose(levels);
        for (const t of [...levels, back]) t.dispose();
      };
    }
    console.log(JSON.stringify({ ms: await time(fn, { warmup: 2, minRuns: 5, minMs: 2500 }) }));
    return;
  }
  const config = d.modelConfig({ size: row.size, stages: 2, channels: 3, imageSize: 32, numClasses: 8 });
  const model = d.Model.create(config, { maxBatch: row.batch, seed: 0 });
  const loader = new d.BatchLoader(d.shapesDataset(), row.batch, 0);
  const batch = await loader.next();
  let fn;
  if (row.kind === 'train') {
    const trainer = new d.Trainer(model, { stageProbs: [0.5, 0.5] });
    fn = () => trainer.step(batch);
  } else {
    const sampler = new d.Sampler(model);
    const labels = Array.from({ length: row.batch }, (_, i) => i % 8);
    fn = async () => {
      const r = await sampler.sample({ n: row.batch, labels, stepsPerStage: [30, 10], cfg: 2, ema: false });
      for (const t of [r.images, ...r.levels]) t.dispose();
    };
  }
  const ms = await time(fn, { warmup: 2, minRuns: 5, minMs: 2500 });
  console.log(JSON.stringify({ ms }));
}

function addonOf(dir) {
  const built = path.join(dir, 'build', 'Release', 'decoflow.node');
  return fs.existsSync(built) ? built : path.join(dir, 'decoflow.node');
}

function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  if (process.env.DECOFLOW_AB_ROW) return measure(process.env.DECOFLOW_AB_ROW, Number(opt('threads', 2)));
  const builds = { A: path.resolve(opt('a', '')), B: path.resolve(opt('b', '.')) };
  const addons = {
    A: opt('a-addon') ? path.resolve(opt('a-addon')) : addonOf(builds.A),
    B: opt('b-addon') ? path.resolve(opt('b-addon')) : addonOf(builds.B),
  };
  const rounds = Number(opt('rounds', 5));
  const threads = Number(opt('threads', 2));
  const rows = opt('rows') ? opt('rows').split(',') : Object.keys(ROWS);
  for (const row of rows)
    if (!ROWS[row]) {
      console.error(`ab: unknown row '${row}' (rows: ${Object.keys(ROWS).join(', ')})`);
      process.exit(2);
    }
  for (const [k, dir] of Object.entries(builds))
    if (!fs.existsSync(path.join(dir, 'dist', 'index.cjs')) || !fs.existsSync(addons[k])) {
      console.error(`ab: build ${k} (${dir}) needs dist/index.cjs and decoflow.node`);
      process.exit(2);
    }
  const times = {};
  for (let r = 0; r < rounds; r++)
    for (const row of rows)
      for (const k of r % 2 ? ['B', 'A'] : ['A', 'B']) {
        const env = {
          ...process.env,
          DECOFLOW_AB_ROW: row,
          DECOFLOW_AB_DIST: path.join(builds[k], 'dist', 'index.cjs'),
          DECOFLOW_NATIVE_PATH: addons[k],
          ...(args.includes('--cpu') ? { DECOFLOW_AB_CPU: '1' } : {}),
        };
        const out = spawnSync(process.execPath, [__filename, '--threads', String(threads)], { env, encoding: 'utf8' });
        if (out.status !== 0) {
          console.error(out.stderr);
          process.exit(1);
        }
        const { ms } = JSON.parse(out.stdout.trim().split('\n').pop());
        ((times[row] ??= { A: [], B: [] })[k]).push(ms);
      }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`A = ${builds.A} (${addons.A})\nB = ${builds.B} (${addons.B})\n${rounds} rounds, ${threads} threads, ` +
    `median of the rounds' medians${args.includes('--cpu') ? ' of CPU time (user + system)' : ''}`);
  console.log('row            A ms      B ms      B/A');
  for (const [row, t] of Object.entries(times)) {
    const a = median(t.A), b = median(t.B);
    console.log(`${row.padEnd(14)} ${a.toFixed(1).padStart(8)}  ${b.toFixed(1).padStart(8)}  ${(b / a).toFixed(3)}`);
  }
}

main();
