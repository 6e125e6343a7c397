// Multi-scale decompositions of images [B, C, H, W] (f32) into stages, coarse to fine (DESIGN.md §1):
// stage 1 is x reduced `stages - 1` times by 2; every later stage is the detail lost between two
// neighbouring resolutions, so recompose(decompose(x)) gives x back (to float rounding).
//
//   'laplacian' (default): PyTorch's bilinear F.interpolate (align_corners=False, no antialias) at
//                          1/2 and 2, as the DFM authors use.
//   'haar':                the orthonormal Haar wavelet: the low band at the coarsest stage, and
//                          each finer stage holds its level's three detail bands mapped back onto
//                          its grid; the stages preserve the energy (sum of squares) of x.
//
// Each level pair is one fused, multithreaded pass over memory. `foo()` runs off the event loop and
// returns a Promise; `fooSync()` blocks. Bad input is an Error with a `code` (ERR_DECOFLOW_SHAPE, ...).
import type { NativePyramidOptions } from '../types/native';
import { decoflowError } from './errors';
import { native } from './native';
import { nativeOf, Tensor } from './tensor';

export type PyramidKind = 'laplacian' | 'haar';

export interface PyramidOptions {
  /** The decomposition; recompose and preview must be given the kind that decomposed. */
  kind?: PyramidKind;
}

export interface DecomposeOptions extends PyramidOptions {
  /** Number of stages, 1 to 16 (default 2); H and W must be divisible by 2^(stages-1). */
  stages?: number;
}

function nativeLevels(levels: readonly Tensor[], fn: string) {
  if (!Array.isArray(levels)) throw decoflowError('ERR_DECOFLOW_ARG_TYPE', `${fn}: levels: expected an array of Tensors`);
  return levels.map((t, i) => nativeOf(t, `${fn}: levels[${i}]`));
}

/** The stages of x, coarse to fine: stage s has height H / 2^(stages - s). */
export async function decompose(x: Tensor, options: DecomposeOptions = {}): Promise<Tensor[]> {
  const handles = await native.pyramidDecompose(nativeOf(x, 'pyramid.decompose: x'), options as NativePyramidOptions);
  return handles.map((h) => new Tensor(h));
}

export function decomposeSync(x: Tensor, options: DecomposeOptions = {}): Tensor[] {
  const handles = native.pyramidDecomposeSync(nativeOf(x, 'pyramid.decomposeSync: x'), options as NativePyramidOptions);
  return handles.map((h) => new Tensor(h));
}

/** The image whose decomposition is `levels` (coarse to fine, each twice the size of the one before). */
export async function recompose(levels: readonly Tensor[], options: PyramidOptions = {}): Promise<Tensor> {
  return new Tensor(await native.pyramidRecompose(nativeLevels(levels, 'pyramid.recompose'), options as NativePyramidOptions));
}

export function recomposeSync(levels: readonly Tensor[], options: PyramidOptions = {}): Tensor {
  return new Tensor(native.pyramidRecomposeSync(nativeLevels(levels, 'pyramid.recomposeSync'), options as NativePyramidOptions));
}

/**
 * The first `upTo` stages recomposed and upsampled to full size, as if the later stages were zero:
 * what a sampler shows as a preview before the fine stages exist. Later levels are not read.
 */
export async function preview(levels: readonly Tensor[], upTo: number, options: PyramidOptions = {}): Promise<Tensor> {
  return new Tensor(await native.pyramidPreview(nativeLevels(levels, 'pyramid.preview'), upTo, options as NativePyramidOptions));
}

export function previewSync(levels: readonly Tensor[], upTo: number, options: PyramidOptions = {}): Tensor {
  return new Tensor(native.pyramidPreviewSync(nativeLevels(levels, 'pyramid.previewSync'), upTo, options as NativePyramidOptions));
}

/** pyramid.decompose(x, { stages, kind }), pyramid.recompose(levels), pyramid.preview(levels, upTo), and their Sync forms. */
export const pyramid = Object.freeze({ decompose, decomposeSync, recompose, recomposeSync, preview, previewSync });
