#!/usr/bin/env node
// The CUDA checks of test/cuda/checks.js and test/cuda/training.js without jest, for the GPU machine
// (which has no node_modules): loads the built package (dist/, with DECOFLOW_NATIVE_PATH and
// DECOFLOW_CUDA_LIBRARY pointing at the builds), runs every check even after one fails (device time
// is scarce: one run should show every failure), and exits non-zero if any failed.
//   node scripts/device-node-check.js [name ...]      (names: the checks below; default all)
'use strict';
const path = require('path');
const df = require(path.join(__dirname, '..', 'dist', 'index.cjs'));
const checks = require(path.join(__dirname, '..', 'test', 'cuda', 'checks.js'));
const training = require(path.join(__dirname, '..', 'test', 'cuda', 'training.js'));

const ALL = {
  tensors: checks.tensors,
  attention: checks.attention,
  attentionErrors: checks.attentionErrors,
  pyramid: checks.pyramid,
  f32Steps: training.f32Steps,
  bf16Curve: training.bf16Curve,
  checkpointsAndSampling: training.checkpointsAndSampling,
  memoryAndLoader: training.memoryAndLoader,
};

(async () => {
  const cuda = df.backends().find((b) => b.name === 'cuda');
  console.log(`node ${process.version}; cuda: ${cuda.available ? cuda.detail || 'available' : `unavailable: ${cuda.reason}`}`);
  if (!cuda.available) process.exit(1);
  const names = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(ALL);
  const failed = [];
  for (const name of names) {
    if (!ALL[name]) throw new Error(`unknown check ${name}; known: ${Object.keys(ALL).join(', ')}`);
    const t0 = Date.now();
    try {
      await ALL[name](df, (line) => console.log(`  ${line}`));
      console.log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed.push(name);
      console.log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${e && e.stack ? e.stack : e}`);
    }
  }
  if (failed.length) {
    console.log(`device-node-check: ${failed.length} of ${names.length} checks failed: ${failed.join(', ')}`);
    process.exit(1);
  }
  console.log(`device-node-check: all ${names.length} checks passed`);
})().catch((e) => {
  console.error(`device-node-check: FAIL: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
