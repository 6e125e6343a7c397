// The DFM pipeline at the demo's size ('tiny' DiT, 32 px RGB, 8x8 tokens, batch 32): a training step
// and sampling 32 images with 40 evaluations, DFM (2 stages, [30, 10]) and FM (1 stage, [40]), each
// against the same computation in PyTorch 2.x: `decoflow bench train:tiny sample:tiny ...`.
'use strict';
require('./common').runBench(['train:tiny', 'train:tiny:1', 'sample:tiny', 'sample:tiny:1']);
