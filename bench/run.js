// Every default row of `decoflow bench` against PyTorch 2.x (bench/common.js), in one run.
// Usage: npm run bench [-- rows/options]   e.g. npm run bench -- gemm pyramid --rounds 2
'use strict';
require('./common').runBench([]);
