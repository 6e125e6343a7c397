// Runs every benchmark in bench/ (each prints its own table of ratios against PyTorch).
// Usage: npm run bench [-- name ...]   e.g. npm run bench -- gemm pyramid
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const all = fs
  .readdirSync(__dirname)
  .filter((f) => f.endsWith('.js') && !['run.js', 'common.js', 'experiment.js', 'sampling_study.js'].includes(f)) // the last two are studies, not timings
  .map((f) => f.replace(/\.js$/, ''));
const chosen = process.argv.slice(2).length ? process.argv.slice(2) : all;
let failed = 0;
for (const name of chosen) {
  if (!all.includes(name)) {
    console.error(`bench: unknown benchmark '${name}' (have: ${all.join(', ')})`);
    process.exit(2);
  }
  console.log(`\n== ${name} ==`);
  const r = spawnSync(process.execPath, [path.join(__dirname, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
