// The DFM-versus-FM experiment at its default (2-core, well under an hour) size: one
// `decoflow experiment` process per dataset (or, with DECOFLOW_SPLIT=arms, per dataset and arm),
// one thread each, running side by side; then the merged curves (curves.png) and side-by-side
// sample grids (grids-*.png) in the output folder.
//   node bench/experiment.js [--out DIR] [--datasets D1,D2] [--arms 'A1;A2'] [--scale K] [any other decoflow experiment flag]
// e.g. --scale 10 trains 10x longer with 8x the samples per evaluation. --datasets and --arms (or
// DECOFLOW_DATASETS, default 'fashion-mnist,shapes', and DECOFLOW_ARMS, default 'fm;dfm-0.9;dfm-0.5')
// choose what runs.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { drawCharts, drawGrids } = require('../dist/index.cjs');

// --out, --datasets and --arms are this script's own: each child gets its one dataset (passing them
// through as well would let the last flag win, and every child would run the same dataset).
const own = { out: 'experiment', datasets: process.env.DECOFLOW_DATASETS || 'fashion-mnist,shapes', arms: process.env.DECOFLOW_ARMS || 'fm;dfm-0.9;dfm-0.5' };
const rest = [];
for (let i = 2; i < process.argv.length; i++) {
  const name = process.argv[i].startsWith('--') ? process.argv[i].slice(2) : '';
  if (Object.hasOwn(own, name) && i + 1 < process.argv.length) own[name] = process.argv[++i];
  else rest.push(process.argv[i]);
}
const out = own.out;
const datasets = own.datasets.split(',');
const arms = own.arms;
const byArm = process.env.DECOFLOW_SPLIT === 'arms';
const jobs = datasets.flatMap((d) => (byArm ? arms.split(';').map((a) => ({ dataset: d, arms: a })) : [{ dataset: d, arms }]));
const resultsFile = (j) => `results-${j.dataset}${byArm ? `-${j.arms.replace(/[^a-z0-9.-]/gi, '_')}` : ''}.json`;

function run(job) {
  return new Promise((resolve, reject) => {
    const args = [path.join(__dirname, '..', 'bin', 'decoflow.js'), 'experiment', '--datasets', job.dataset, '--arms', job.arms, '--out', out, '--results', resultsFile(job), '--threads', '1', ...rest];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${job.dataset} ${job.arms}: exit code ${code}`))));
  });
}

(async () => {
  const t0 = Date.now();
  await Promise.all(jobs.map(run));
  const results = jobs.flatMap((j) => JSON.parse(fs.readFileSync(path.join(out, resultsFile(j)), 'utf8')).results);
  await drawCharts(results, out);
  await drawGrids(results, out);
  console.log(`experiment: ${results.length} runs in ${((Date.now() - t0) / 60000).toFixed(1)} min; ${path.join(out, 'curves.png')}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
