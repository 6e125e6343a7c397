// Pyramid decompose + recompose (f32), GB/s of the bytes the two passes must move, against
// PyTorch's F.interpolate pyramid and as a share of the copy bandwidth measured in the same run:
// `decoflow bench pyramid` plus the same shapes into given outputs (':out', as the trainer and the
// sampler call it) and the Haar wavelet (no PyTorch counterpart).
//   node bench/pyramid.js [decoflow bench options, e.g. --threads 1]
'use strict';
const { BENCH_DEFAULT_ROWS } = require('../dist/index.cjs');

const laplacian = BENCH_DEFAULT_ROWS.cpu.pyramid;
const rows = [...laplacian, ...laplacian.map((id) => `${id}:out`), ...laplacian.map((id) => `${id.replace('laplacian', 'haar')}:out`)];
require('./common').runBench(rows);
