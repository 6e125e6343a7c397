// Sampling-only study on checkpoints written by `decoflow experiment`: the same DFM weights sampled
// with other splits of the 40 function evaluations between the stages and other thresholds tau,
// and step spacings, each scored with decoflow eval's metrics against the validation images of the
// dataset (the first 1000 held-out images, with the experiment's sampling seed and labels).
//   node bench/sampling_study.js --dataset fashion-mnist --checkpoints 'DIR1;DIR2' [--samples 96]
//     [--variants "30,10~0.7;20,20~0.7;10,30~0.7;30,10~0.9;35,5~0.95s1.5"] [--split test] [--out study.json]
// A variant is N1,N2[~TAU][sM[/M2]][nE[/E2]][gW[iLO-HI]][:SOLVER]: steps per stage, the threshold, the
// fine stage's step shift M (the sampler's stageTimeShifts [0, M]; sM/M2 gives [M, M2], shifting the
// coarse stage's steps too), its eta E (stageEta [0, E]; nE/E2 gives [E, E2]), classifier-free
// guidance W (cfg) applied while the newest stage's t is in [LO, HI] (guidanceInterval; default the
// whole run) and the solver (:heun or :midpoint spend two function evaluations a step, so 15,5:heun
// costs what 30,10 does). A guided step costs two evaluations; the row's `evaluations` counts them.
// N[sM][nE][:SOLVER] is one for a flow-matching (one-stage) checkpoint (default for those: 40).
// --split test scores against the experiment's test images (the next 1000) instead, for a variant
// already chosen on validation. Folders are separated by ';': the experiment names an arm's folder
// after the arm, and DFM arms hold commas ('dfm-0.6w3@35,5~0.95'); a .safetensors path is taken as
// the checkpoint itself (for the post-hoc EMA checkpoints of decoflow ema).
const fs = require('node:fs');
const path = require('node:path');
const { Model, Sampler, evaluate, loadImageSet, formatEvalTable, setThreads, flowSchedule } = require('../dist/index.cjs');

// Model evaluations per sample: a step is guided while its newest stage's t (at the step's start)
// is in the guidance interval, as the sampler decides; heun and midpoint take two evaluations a step.
// (Their second evaluation is counted with the first; the sampler decides it at its own t, so a
// step that straddles an end of the interval may be counted one off.)
function countEvaluations(stages, stepsPerStage, thresholds, stageTimeShifts, solver, interval) {
  const sch = flowSchedule(stages, stepsPerStage, thresholds, stageTimeShifts);
  const perStep = solver === 'euler' ? 1 : 2;
  let n = 0;
  for (let i = 0; i < sch.newestStage.length; i++) {
    const t = sch.times[i][sch.newestStage[i]];
    n += perStep * (interval && t >= interval[0] && t <= interval[1] ? 2 : 1);
  }
  return n;
}

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

(async () => {
  const dataset = flag('dataset', 'fashion-mnist');
  const checkpoints = flag('checkpoints', '').split(';').filter(Boolean);
  const samples = Number(flag('samples', '96'));
  const variants = flag('variants', '30,10~0.7;20,20~0.7;10,30~0.7;30,10~0.9;30,10~0.5').split(';');
  const out = flag('out', 'sampling-study.json');
  if (flag('threads')) setThreads(Number(flag('threads')));
  const split = flag('split', 'validation');
  if (split !== 'validation' && split !== 'test') throw new Error(`--split: expected 'validation' or 'test', got '${split}'`);
  const real = await loadImageSet(dataset, { offset: split === 'test' ? 1000 : 0, limit: 1000, imageSize: 32 });
  const rows = [];
  for (const dir of checkpoints) {
    // a folder holding checkpoint.safetensors, or a checkpoint file itself (e.g. from decoflow ema)
    const model = Model.load(dir.endsWith('.safetensors') ? dir : path.join(dir, 'checkpoint.safetensors'));
    const k = model.config.numClasses;
    const labels = k > 0 ? Array.from({ length: samples }, (_, i) => Math.floor(i / 8) % k) : undefined;
    // A one-stage (FM) checkpoint takes the variants with one step count (N[sM][nE][gW]).
    const own = variants.filter((v) => /^\d+(s|n|g|:|$)/.test(v) === (model.config.stages === 1));
    for (const v of model.config.stages === 1 && own.length === 0 ? ['40'] : own) {
      const m = /^(\d+(?:,\d+)*)(?:~([0-9.]+))?(?:s(-?[0-9.]+)(?:\/(-?[0-9.]+))?)?(?:n([0-9.]+)(?:\/([0-9.]+))?)?(?:g([0-9.]+)(?:i([0-9.]+)-([0-9.]+))?)?(?::(euler|heun|midpoint))?$/.exec(v);
      if (!m) throw new Error(`variant '${v}': expected N1,N2[~TAU][sM[/M2]][nE[/E2]][gW[iLO-HI]][:euler|heun|midpoint]`);
      const stepsPerStage = m[1].split(',').map(Number);
      const tau = m[2];
      // A per-stage setting: X alone is the last stage's (the coarse one keeps 0), X/X2 gives both.
      const perStage = (a, b) =>
        a === undefined ? undefined : stepsPerStage.length === 1 ? [Number(a)] : b === undefined ? [0, Number(a)] : [Number(a), Number(b)];
      const stageTimeShifts = perStage(m[3], m[4]);  // sM[/M2]
      const stageEta = perStage(m[5], m[6]);  // nE[/E2]
      const cfg = m[7] === undefined ? 1 : Number(m[7]);
      const guidanceInterval = m[8] === undefined ? [0, 1] : [Number(m[8]), Number(m[9])];
      const solver = m[10] ?? 'euler';
      const thresholds = tau ? [Number(tau)] : undefined;
      const evaluations = countEvaluations(model.config.stages, stepsPerStage, thresholds, stageTimeShifts, solver, k > 0 && cfg !== 1 ? guidanceInterval : null);
      const t0 = Date.now();
      const r = await new Sampler(model).sample({ n: samples, labels, seed: 1, stepsPerStage, thresholds, stageTimeShifts, stageEta, solver, cfg, guidanceInterval });
      const result = await evaluate(r.images, real, { seed: 0 });
      for (const t of [r.images, ...r.levels]) t.dispose();
      rows.push({ name: `${path.basename(dir)} ${v}`, checkpoint: dir, stepsPerStage, tau: tau ? Number(tau) : null, stageTimeShifts: stageTimeShifts ?? null, stageEta: stageEta ?? null, solver, cfg, guidanceInterval, evaluations, result });
      process.stderr.write(`${path.basename(dir)} ${v}: ${evaluations} evaluations, SWD ${result.swd.mean.toFixed(1)} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
    }
    model.dispose();
  }
  real.dispose();
  process.stdout.write(formatEvalTable(rows));
  fs.writeFileSync(out, JSON.stringify({ dataset, split, samples, rows }, null, 2));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
