// Multi-scale decompositions of images [B, C, H, W] (f32) into stages, coarse to fine (docs/METHOD.md):
// stage 1 is x reduced `stages - 1` times by 2; every later stage is the detail lost between two
// neighbouring resolutions, so recompose(decompose(x)) gives x back (to float rounding).
//
//   'laplacian' (default): PyTorch's bilinear F.interpolate (align_corners=False, no antialias) at
//                          1/2 and 2, as the DFM authors use.
//   'haar':                the orthonormal Haar wavelet: the low band at the coarsest stage, and
//                          each finer stage holds its level's three detail bands mapped back onto
//                          its grid; the stages preserve the energy (sum of squares) of x.
//   'consistent':          the Laplacian's 2x2 means with the mean-preserving up-sampler U (D U)^-1:
//                          detail levels have zero 2x2 means, and any levels recompose to an image
//                          that reduces exactly to its coarser stages.
//
// Each level pair is one fused, multithreaded pass over memory. On a CUDA device the stages may also
// be bf16 (computed in f32, each stage rounded once), one kernel launch per level pair. `foo()` runs off the event loop and
// returns a Promise; `fooSync()` blocks. Bad input is an Error with a `code` (ERR_DECOFLOW_SHAPE, ...).
import type { NativePyramidOptions, NativeTensor } from '../types/native';
import { decoflowError } from './errors';
import { native } from './native';
import { nativeOf, Tensor } from './tensor';

export type PyramidKind = 'laplacian' | 'haar' | 'consistent';

export interface PyramidOptions {
  /** The decomposition; recompose and preview must be given the kind that decomposed. */
  kind?: PyramidKind;
}

export interface DecomposeOptions extends PyramidOptions {
  /** Number of stages, 1 to 16 (default 2); H and W must be divisible by 2^(stages-1). */
  stages?: number;
  /** Tensors to write the stages into (x's dtype and device, the stages' shapes, not overlapping x): no allocation. */
  out?: readonly Tensor[];
}

export interface RecomposeOptions extends PyramidOptions {
  /** A tensor to write the image into (the levels' dtype and device, the image's shape, not overlapping them). */
  out?: Tensor;
}

function nativeLevels(levels: readonly Tensor[], fn: string, name = 'levels') {
  if (!Array.isArray(levels)) throw decoflowError('ERR_DECOFLOW_ARG_TYPE', `${fn}: ${name}: expected an array of Tensors`);
  return levels.map((t, i) => nativeOf(t, `${fn}: ${name}[${i}]`));
}

function nativeOptions(options: DecomposeOptions | RecomposeOptions, fn: string): NativePyramidOptions {
  if (options === null || typeof options !== 'object' || options.out === undefined) return options as NativePyramidOptions;
  const out = Array.isArray(options.out)
    ? nativeLevels(options.out, fn, 'options.out')
    : nativeOf(options.out, `${fn}: options.out`);
  return { ...(options as NativePyramidOptions), out };
}

function wrapLevels(handles: NativeTensor[], out: readonly Tensor[] | undefined): Tensor[] {
  return out ? [...out] : handles.map((h) => new Tensor(h));
}

/** The stages of x, coarse to fine: stage s has height H / 2^(stages - s). */
export async function decompose(x: Tensor, options: DecomposeOptions = {}): Promise<Tensor[]> {
  const fn = 'pyramid.decompose';
  const handles = await native.pyramidDecompose(nativeOf(x, `${fn}: x`), nativeOptions(options, fn));
  return wrapLevels(handles, options?.out);
}

export function decomposeSync(x: Tensor, options: DecomposeOptions = {}): Tensor[] {
  const fn = 'pyramid.decomposeSync';
  const handles = native.pyramidDecomposeSync(nativeOf(x, `${fn}: x`), nativeOptions(options, fn));
  return wrapLevels(handles, options?.out);
}

/** The image whose decomposition is `levels` (coarse to fine, each twice the size of the one before). */
export async function recompose(levels: readonly Tensor[], options: RecomposeOptions = {}): Promise<Tensor> {
  const fn = 'pyramid.recompose';
  const handle = await native.pyramidRecompose(nativeLevels(levels, fn), nativeOptions(options, fn));
  return options?.out ?? new Tensor(handle);
}

export function recomposeSync(levels: readonly Tensor[], options: RecomposeOptions = {}): Tensor {
  const fn = 'pyramid.recomposeSync';
  const handle = native.pyramidRecomposeSync(nativeLevels(levels, fn), nativeOptions(options, fn));
  return options?.out ?? new Tensor(handle);
}

/**
 * The first `upTo` stages recomposed and upsampled to full size, as if the later stages were zero:
 * what a sampler shows as a preview before the fine stages exist. Later levels are not read.
 */
export async function preview(levels: readonly Tensor[], upTo: number, options: RecomposeOptions = {}): Promise<Tensor> {
  const fn = 'pyramid.preview';
  const handle = await native.pyramidPreview(nativeLevels(levels, fn), upTo, nativeOptions(options, fn));
  return options?.out ?? new Tensor(handle);
}

export function previewSync(levels: readonly Tensor[], upTo: number, options: RecomposeOptions = {}): Tensor {
  const fn = 'pyramid.previewSync';
  const handle = native.pyramidPreviewSync(nativeLevels(levels, fn), upTo, nativeOptions(options, fn));
  return options?.out ?? new Tensor(handle);
}

/** pyramid.decompose(x, { stages, kind }), pyramid.recompose(levels), pyramid.preview(levels, upTo), and their Sync forms. */
export const pyramid = Object.freeze({ decompose, decomposeSync, recompose, recomposeSync, preview, previewSync });
