// One DFM-DiT training step (forward, hand-written backward, clipping, AdamW, EMA) against the same
// model in PyTorch 2.x (the reference model of test/reference/dit_reference.py with fused attention),
// same run and threads, two rounds: `decoflow bench train:small train:S`. GFLOP/s counts the model's
// matmul and attention FLOPs (training = 3 x forward), also as a share of the measured FMA peak.
'use strict';
require('./common').runBench(['train:small', 'train:S'], { defaults: ['--rounds', '2'] });
