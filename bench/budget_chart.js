// One chart of several `decoflow experiment` runs made at different budgets (e.g. 400, 1200 and 4000
// steps, each run evaluated once at its end): every arm becomes one curve through its runs' final
// weights, scored on the test images (EMA weights), so the chart shows what each arm reaches at each
// budget. A run's own curve (curves.png) follows one learning-rate schedule; this one compares runs.
// Also NAME-grids-DATASET.png: every arm's samples from its largest budget side by side.
//   node bench/budget_chart.js --out DIR [--name budgets] results1.json results2.json ...
const fs = require('node:fs');
const path = require('node:path');
const { drawCharts, drawGrids } = require('../dist/index.cjs');

const argv = process.argv.slice(2);
const take = (flag, fallback) => {
  const i = argv.indexOf(flag);
  if (i < 0) return fallback;
  const [, value] = argv.splice(i, 2);
  return value;
};
const out = take('--out', '.');
const name = take('--name', 'budgets');
if (argv.length === 0) {
  console.error('usage: node bench/budget_chart.js --out DIR [--name budgets] results1.json ...');
  process.exit(2);
}

const byArm = new Map();
const largest = new Map(); // the run of each arm with the most steps, and the folder its samples are in
for (const file of argv) {
  // outDir: the run's output folder, recorded since the validation/test split; before, results.json sat in it.
  const { outDir = path.dirname(path.resolve(file)), results } = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const r of results) {
    if (!r.test) throw new Error(`${file}: ${r.dataset} ${r.arm.name} has no test result (an older experiment file)`);
    const key = `${r.dataset}\u0000${r.arm.name}`;
    if (!byArm.has(key)) byArm.set(key, { ...r, points: [] });
    const last = r.points[r.points.length - 1];
    byArm.get(key).points.push({ ...last, result: r.test.ema, raw: r.test.raw });
    if (!largest.has(key) || largest.get(key).run.points.at(-1).step < last.step) largest.set(key, { run: r, dir: outDir });
  }
}
const curves = [...byArm.values()];
for (const c of curves) c.points.sort((a, b) => a.trainingFlops - b.trainingFlops);
fs.mkdirSync(out, { recursive: true });
const runs = [...largest.values()];
const dirOf = new Map(runs.map((l) => [l.run, l.dir]));

(async () => {
  await drawCharts(curves, out, name);
  await drawGrids(runs.map((l) => l.run), out, { runDir: (r) => dirOf.get(r), name: `${name}-grids` });
  for (const c of curves)
    console.log(`${c.dataset} ${c.arm.name}: ${c.points.map((p) => `${(p.trainingFlops / 1e12).toFixed(1)} TFLOP SWD ${p.result.swd.mean.toFixed(1)}`).join(', ')}`);
  console.log(`wrote ${path.join(out, `${name}.png`)}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
