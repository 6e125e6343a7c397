// The DFM-versus-FM experiment at its default (2-core, well under an hour) size: one
// `decoflow experiment` process per dataset, one thread each, running side by side; then the
// merged curves (curves.png) and side-by-side sample grids (grids-*.png) in the output folder.
//   node bench/experiment.js [--out DIR] [--scale K] [any other decoflow experiment flag]
// e.g. --scale 10 trains 10x longer with 8x the samples per evaluation.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { drawCharts, drawGrids } = require('../dist/index.cjs');

const argv = process.argv.slice(2);
const outAt = argv.indexOf('--out');
const out = outAt >= 0 ? argv[outAt + 1] : 'experiment';
const rest = outAt >= 0 ? argv.filter((_, i) => i !== outAt && i !== outAt + 1) : argv;
const datasets = ['fashion-mnist', 'shapes'];
const arms = process.env.DECOFLOW_ARMS || 'fm;dfm-0.9;dfm-0.5';

function run(dataset) {
  return new Promise((resolve, reject) => {
    const args = [path.join(__dirname, '..', 'bin', 'decoflow.js'), 'experiment', '--datasets', dataset, '--arms', arms, '--out', out, '--results', `results-${dataset}.json`, '--threads', '1', ...rest];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${dataset}: exit code ${code}`))));
  });
}

(async () => {
  const t0 = Date.now();
  await Promise.all(datasets.map(run));
  const results = datasets.flatMap((d) => JSON.parse(fs.readFileSync(path.join(out, `results-${d}.json`), 'utf8')).results);
  await drawCharts(results, out);
  await drawGrids(results, out);
  console.log(`experiment: ${results.length} runs in ${((Date.now() - t0) / 60000).toFixed(1)} min; ${path.join(out, 'curves.png')}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
