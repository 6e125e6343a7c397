// The CUDA backend through the public API (test/cuda/checks.js): runs where a GPU is usable and is
// skipped, saying why, elsewhere. On the GPU machine the same checks run without jest through
// scripts/device-node-check.js.
import * as df from '../lib';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const checks = require('./cuda/checks.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const training = require('./cuda/training.js');
const cuda = df.backends().find((b) => b.name === 'cuda')!;
const onGpu = cuda.available ? test : test.skip;
if (!cuda.available) console.log(`cuda tests skipped: ${cuda.reason}`);

describe('CUDA backend', () => {
  onGpu('tensors move to the GPU and back; bad devices and out-of-memory are coded errors', () => checks.tensors(df));
  onGpu('flash attention on f16/bf16 CUDA tensors matches the CPU op, forward and backward', () => checks.attention(df), 120_000);
  onGpu('attention on CUDA tensors refuses bad input with coded errors', () => checks.attentionErrors(df));
  onGpu('pyramid decompose/recompose on f32/bf16 CUDA tensors matches the CPU op', () => checks.pyramid(df), 120_000);
  onGpu('training steps in f32 mode reproduce the CPU loss and every gradient (S = 1, 2, 3)', () => training.f32Steps(df), 300_000);
  onGpu('bf16 training tracks the CPU loss curve over 200 steps', () => training.bf16Curve(df), 300_000);
  onGpu('checkpoints move between devices; one seed samples the same images on both', () => training.checkpointsAndSampling(df), 300_000);
  onGpu('memory, out of memory and the batch loader on the device', () => training.memoryAndLoader(df), 120_000);
  test('without a usable GPU, cuda tensors are refused with the reason', () => {
    if (cuda.available) return;
    const t = df.Tensor.zeros([2]);
    let err: { code?: string; message?: string } = {};
    try {
      t.to('cuda');
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.code).toBe('ERR_DECOFLOW_DEVICE');
    expect(err.message).toMatch(/not available/);
    t.dispose();
  });
});
