// matmul f32 GFLOP/s at 1024^3, with OpenBLAS and with decoflow's built-in kernel, against
// torch.matmul in the same run and threads: `decoflow bench gemm:1024:blas gemm:1024:builtin`.
// Other sizes: node bench/gemm.js gemm:2048 gemm:512x4096x1024:builtin
'use strict';
require('./common').runBench(['gemm:1024:blas', 'gemm:1024:builtin']);
