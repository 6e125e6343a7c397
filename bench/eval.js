// decoflow eval's metrics against the same computations in PyTorch (same threads, same run):
// `decoflow bench eval`:
//   eval:frechet:D   Frechet distance of two D x D covariances in float64 (eigh, products, eigvalsh)
//   eval:swd:N       SWD x 1000 of N vs N grey 32 px images: Laplacian pyramid (3 levels), 64 random
//                    7x7 patches per image and level, per-channel normalisation, 512 projections, sorts
//   eval:pr:N        k-NN precision and recall (k = 3) of N vs N images in the 256-d pix16 space
//   node bench/eval.js [more rows, e.g. eval:swd:2000] [decoflow bench options]
'use strict';
require('./common').runBench(['eval']);
