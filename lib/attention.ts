// Flash attention: o = softmax(q k^T * scale [+ causal mask]) v over [batch, heads, n, dim]
// tensors, computed tile by tile (the n x n matrix never exists), with the per-row log-sum-exp
// (f32) that the backward pass needs. On the CPU the tensors are f32 (any dim up to 256); on a CUDA
// device f16 or bf16 with f32 accumulation (dim 32, 64 or 128), and the outputs stay there. Causal masking hides key j from query i when
// j > i + (nk - nq) (with nq = nk: the usual lower triangle); a query that sees no key gets o = 0
// and lse = -Infinity.
import type { NativeAttentionGrads, NativeAttentionOutput } from '../types/native';
import { native } from './native';
import { nativeOf, Tensor } from './tensor';

export interface AttentionOptions {
  /** Multiplies q k^T; default 1 / sqrt(dim). Must be finite. */
  scale?: number;
  /** Mask keys after each query (see above); default false. */
  causal?: boolean;
}

export interface AttentionOutput {
  /** [batch, heads, nq, dim] */
  o: Tensor;
  /** [batch, heads, nq]: log-sum-exp of each row of the scaled scores (natural log). */
  lse: Tensor;
}

export interface AttentionGrads {
  dq: Tensor;
  dk: Tensor;
  dv: Tensor;
}

const wrapOutput = (r: NativeAttentionOutput): AttentionOutput => ({ o: new Tensor(r.o), lse: new Tensor(r.lse) });
const wrapGrads = (r: NativeAttentionGrads): AttentionGrads => ({
  dq: new Tensor(r.dq),
  dk: new Tensor(r.dk),
  dv: new Tensor(r.dv),
});

/** q [B, H, nq, D], k and v [B, H, nk, D], all on one device (see above). Runs off the event loop. */
export async function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Promise<AttentionOutput> {
  const fn = 'attention';
  return wrapOutput(await native.attention(nativeOf(q, `${fn}: q`), nativeOf(k, `${fn}: k`), nativeOf(v, `${fn}: v`), options));
}

export function attentionSync(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): AttentionOutput {
  const fn = 'attentionSync';
  return wrapOutput(native.attentionSync(nativeOf(q, `${fn}: q`), nativeOf(k, `${fn}: k`), nativeOf(v, `${fn}: v`), options));
}

/**
 * Gradients of a loss with respect to q, k and v, given the forward's o and lse and the gradient
 * dO of the loss with respect to o. Use the same options as the forward. Runs off the event loop.
 */
export async function attentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: Tensor,
  lse: Tensor,
  dO: Tensor,
  options: AttentionOptions = {},
): Promise<AttentionGrads> {
  const fn = 'attentionBackward';
  return wrapGrads(
    await native.attentionBackward(
      nativeOf(q, `${fn}: q`),
      nativeOf(k, `${fn}: k`),
      nativeOf(v, `${fn}: v`),
      nativeOf(o, `${fn}: o`),
      nativeOf(lse, `${fn}: lse`),
      nativeOf(dO, `${fn}: dO`),
      options,
    ),
  );
}

export function attentionBackwardSync(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: Tensor,
  lse: Tensor,
  dO: Tensor,
  options: AttentionOptions = {},
): AttentionGrads {
  const fn = 'attentionBackwardSync';
  return wrapGrads(
    native.attentionBackwardSync(
      nativeOf(q, `${fn}: q`),
      nativeOf(k, `${fn}: k`),
      nativeOf(v, `${fn}: v`),
      nativeOf(o, `${fn}: o`),
      nativeOf(lse, `${fn}: lse`),
      nativeOf(dO, `${fn}: dO`),
      options,
    ),
  );
}
