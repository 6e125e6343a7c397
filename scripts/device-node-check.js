#!/usr/bin/env node
// The CUDA checks of test/cuda/checks.js without jest, for the GPU machine (which has no
// node_modules): loads the built package (dist/, with DECOFLOW_NATIVE_PATH and
// DECOFLOW_CUDA_LIBRARY pointing at the builds) and exits non-zero on the first failure.
//   node scripts/device-node-check.js
'use strict';
const path = require('path');
const df = require(path.join(__dirname, '..', 'dist', 'index.cjs'));
const checks = require(path.join(__dirname, '..', 'test', 'cuda', 'checks.js'));
const training = require(path.join(__dirname, '..', 'test', 'cuda', 'training.js'));

(async () => {
  const cuda = df.backends().find((b) => b.name === 'cuda');
  console.log(`node ${process.version}; cuda: ${cuda.available ? cuda.detail || 'available' : `unavailable: ${cuda.reason}`}`);
  if (!cuda.available) process.exit(1);
  const log = (line) => console.log(`  ${line}`);
  checks.tensors(df, log);
  await checks.attention(df, log);
  checks.attentionErrors(df, log);
  await checks.pyramid(df, log);
  await training.f32Steps(df, log);
  await training.bf16Curve(df, log);
  await training.checkpointsAndSampling(df, log);
  await training.memoryAndLoader(df, log);
  console.log('device-node-check: all checks passed');
})().catch((e) => {
  console.error(`device-node-check: FAIL: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
