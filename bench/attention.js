// Flash attention, forward and forward+backward, against PyTorch 2.x scaled_dot_product_attention
// on the CPU in the same run with the same threads: `decoflow bench attention`, three rounds (the two
// sides take turns and each keeps its best median, because the machine is shared and noisy).
// GFLOP/s by FlashAttention's count (forward 4 B H N^2 D, forward+backward 3.5x that, causal half),
// also as a share of the FMA peak measured in the same run.
//   node bench/attention.js [--causal] [decoflow bench options, e.g. --threads 1 --rounds 5]
'use strict';
const { BENCH_DEFAULT_ROWS } = require('../dist/index.cjs');

const argv = process.argv.slice(2);
const causal = argv.includes('--causal');
const rows = causal ? BENCH_DEFAULT_ROWS.cpu.attention.map((id) => `${id}:causal`) : ['attention'];
require('./common').runBench(rows, { defaults: ['--rounds', '3'], argv: argv.filter((a) => a !== '--causal') });
