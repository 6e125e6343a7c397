// Shared pieces of the benchmark harness: timing, the PyTorch peer, and the result table.
// Every row is printed as a ratio against the peer measured in the same run, because these
// machines are noisy. The peer is PyTorch 2.x from DECOFLOW_TORCH_PYTHON (default
// /opt/torch-venv/bin/python, made by ../shared/tools/torch-venv.sh).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const TORCH_PYTHON = process.env.DECOFLOW_TORCH_PYTHON || '/opt/torch-venv/bin/python';

/** Median wall time in ms of fn() (sync or async) after `warmup` runs; at least `minRuns` runs and ~minMs total. */
async function time(fn, { warmup = 2, minRuns = 5, minMs = 300, maxRuns = 200 } = {}) {
  for (let i = 0; i < warmup; i++) await fn();
  const samples = [];
  const start = process.hrtime.bigint();
  while (samples.length < maxRuns) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (samples.length >= minRuns && Number(process.hrtime.bigint() - start) / 1e6 > minMs) break;
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

/**
 * Runs a Python peer script with the same thread count; the script prints one JSON object on its
 * last line. Returns null (and says why) when PyTorch 2.x is not available.
 */
function torchPeer(script, args = [], threads) {
  if (!fs.existsSync(TORCH_PYTHON)) {
    console.log(`(peer skipped: ${TORCH_PYTHON} not found; run ../shared/tools/torch-venv.sh)`);
    return null;
  }
  const r = spawnSync(TORCH_PYTHON, [path.join(__dirname, script), ...args.map(String)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: String(threads), DECOFLOW_THREADS: String(threads) },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    console.log(`(peer failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')})`);
    return null;
  }
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** Prints rows as an aligned table: rows are objects with the same keys. */
function table(rows) {
  if (rows.length === 0) return;
  const keys = Object.keys(rows[0]);
  const fmt = (v) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : String(v ?? '-'));
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => fmt(r[k]).length)));
  console.log(keys.map((k, i) => k.padEnd(widths[i])).join('  '));
  for (const r of rows) console.log(keys.map((k, i) => fmt(r[k]).padEnd(widths[i])).join('  '));
}

/**
 * The machine's FMA peak in GFLOP/s with `threads` threads, measured now by build/Release/bench_fma_peak
 * (built with the addon); null when the program is missing.
 */
function fmaPeak(threads) {
  const exe = path.join(__dirname, '..', 'build', 'Release', 'bench_fma_peak');
  if (!fs.existsSync(exe)) return null;
  const r = spawnSync(exe, [String(threads)], { encoding: 'utf8' });
  return r.status === 0 ? JSON.parse(r.stdout).gflops : null;
}

/** The decoflow module: the built package (dist) so benches measure what users get. */
function decoflow() {
  return require(path.join(__dirname, '..', 'dist', 'index.cjs'));
}

module.exports = { time, torchPeer, table, decoflow, fmaPeak, TORCH_PYTHON };
