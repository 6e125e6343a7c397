// Post-hoc EMA (Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion Models",
// EDM2): choose the EMA length after training. A run trained with the power-function EMA
// (OptimizerOptions.emaPower = gamma) saves its EMA weights every few steps; any other power EMA is
// then approximately a linear combination of those snapshots, with coefficients from a least-squares
// fit of the averaging profiles (functions of training time), which never look at the weights.
//
// The power EMA at step t averages the weights theta_n after step n (n = 1..t) with weights
// (n^(g+1) - (n-1)^(g+1)) / t^(g+1) (decay (1 - 1/n)^(g+1) per step, the trainer's rule): exactly
// the profile p_t(tau) = (g + 1) tau^g / t^(g+1) on (0, t] applied to weights held constant over each
// step. So profiles live in L2(0, inf), their inner products have a closed form, and the error of a
// reconstruction for any weight trajectory is bounded by the profile residual's norm (returned).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decoflowError } from './errors';
import type { Model } from './model';
import { readSafetensors, readSafetensorsMetadata, writeSafetensors } from './safetensors';
import { Tensor } from './tensor';

/** A power-function EMA's averaging profile: its exponent gamma, read at optimizer step `step`. */
export interface EmaProfile {
  step: number;
  gamma: number;
}

/** EDM2's relative standard deviation of a power EMA's profile (its width relative to its length). */
export function sigmaRelOfGamma(gamma: number): number {
  return Math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)));
}

/** sigmaRel is largest (sqrt(1/12) = 0.2887) at gamma 0, a plain running mean; shorter EMAs have smaller ones. */
export const MAX_SIGMA_REL = sigmaRelOfGamma(0);

/** The exponent gamma >= 0 whose profile has this sigmaRel, in (0, 0.2887]; 0.10 -> 6.94, 0.05 -> 16.97. */
export function gammaOfSigmaRel(sigmaRel: number): number {
  if (!(sigmaRel > 0 && sigmaRel <= MAX_SIGMA_REL))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `sigmaRel: expected a number in (0, ${MAX_SIGMA_REL.toFixed(4)}], got ${sigmaRel}`);
  // sigmaRel falls monotonically for gamma >= 0: bisect (in log space above 1, where it is ~gamma^-1).
  let lo = 0;
  let hi = 1;
  while (sigmaRelOfGamma(hi) > sigmaRel) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (sigmaRelOfGamma(mid) > sigmaRel) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** <p_a, p_b> = integral over (0, min(t_a, t_b)] of the two profiles' product (closed form, in logs to stay finite). */
export function profileInnerProduct(a: EmaProfile, b: EmaProfile): number {
  const tMin = Math.min(a.step, b.step);
  const g = a.gamma + b.gamma + 1;
  const log = g * Math.log(tMin) - (a.gamma + 1) * Math.log(a.step) - (b.gamma + 1) * Math.log(b.step);
  return ((a.gamma + 1) * (b.gamma + 1) * Math.exp(log)) / g;
}

export interface PosthocFit {
  /** The weight of each snapshot (in the order given). */
  coefficients: number[];
  /** ||sum_i c_i p_i - p_target|| / ||p_target||: the relative error of the profile reached. */
  relativeError: number;
}

function checkProfile(p: EmaProfile, what: string): void {
  if (!(Number.isInteger(p.step) && p.step >= 1))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${what}.step: expected an integer >= 1, got ${p.step}`);
  if (!(Number.isFinite(p.gamma) && p.gamma >= 0))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `${what}.gamma: expected a finite number >= 0, got ${p.gamma}`);
}

/**
 * Coefficients c minimising ||sum_i c_i p_i - p_target|| over the snapshots' profiles: the normal
 * equations G c = b solved by a pivoted Cholesky factorisation, which leaves out a snapshot whose
 * profile the others already span (a near-zero pivot) instead of amplifying rounding, as a
 * least-squares solver with a rank cut-off does.
 */
export function posthocEmaCoefficients(snapshots: EmaProfile[], target: EmaProfile): PosthocFit {
  if (!Array.isArray(snapshots) || snapshots.length === 0)
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', 'posthocEma: snapshots: expected at least one snapshot');
  snapshots.forEach((s, i) => checkProfile(s, `snapshots[${i}]`));
  checkProfile(target, 'target');
  const n = snapshots.length;
  const G = snapshots.map((a) => snapshots.map((b) => profileInnerProduct(a, b)));
  const rhs = snapshots.map((a) => profileInnerProduct(a, target));
  // Pivoted Cholesky: L L^T = P G P^T over the pivots kept; `order` holds the kept indices.
  const L: number[][] = [];
  const order: number[] = [];
  const diag = G.map((row, i) => row[i]);
  const tol = 1e-12 * Math.max(...diag);
  const remaining = new Set(snapshots.map((_, i) => i));
  while (remaining.size > 0) {
    let best = -1;
    let bestValue = tol;
    for (const i of remaining) {
      let d = G[i][i];
      for (let k = 0; k < order.length; k++) d -= L[k][i] ** 2;
      if (d > bestValue) [best, bestValue] = [i, d];
    }
    if (best < 0) break;
    remaining.delete(best);
    const row = new Array<number>(n).fill(0);
    const root = Math.sqrt(bestValue);
    for (const j of remaining) {
      let s = G[best][j];
      for (let k = 0; k < order.length; k++) s -= L[k][best] * L[k][j];
      row[j] = s / root;
    }
    row[best] = root;
    L.push(row);
    order.push(best);
  }
  // Forward (L y = P b) and back (L^T c = y) substitution over the kept snapshots.
  const m = order.length;
  const y = new Array<number>(m).fill(0);
  for (let k = 0; k < m; k++) {
    let s = rhs[order[k]];
    for (let j = 0; j < k; j++) s -= L[j][order[k]] * y[j];
    y[k] = s / L[k][order[k]];
  }
  const coefficients = new Array<number>(n).fill(0);
  for (let k = m - 1; k >= 0; k--) {
    let s = y[k];
    for (let j = k + 1; j < m; j++) s -= L[k][order[j]] * coefficients[order[j]];
    coefficients[order[k]] = s / L[k][order[k]];
  }
  // ||r||^2 = c'Gc - 2 c'b + <p_t, p_t>, relative to ||p_t||^2.
  const tt = profileInnerProduct(target, target);
  let r2 = tt;
  for (let i = 0; i < n; i++) {
    r2 -= 2 * coefficients[i] * rhs[i];
    for (let j = 0; j < n; j++) r2 += coefficients[i] * coefficients[j] * G[i][j];
  }
  return { coefficients, relativeError: Math.sqrt(Math.max(r2, 0) / tt) };
}

/** A snapshot's format tag: the weights are an EMA's, and `emaSnapshot` says which. */
const SNAPSHOT_KEY = 'emaSnapshot';

/**
 * Saves `model`'s EMA weights as a snapshot for posthocEma: a checkpoint whose weights are the EMA
 * (loadable with Model.load like any other, e.g. to sample from it) and whose metadata records the
 * step and the power EMA's gamma. Needs a model trained with emaPower > 0. Written atomically.
 */
export function saveEmaSnapshot(model: Model, file: string): void {
  const gamma = model.optimizerOptions.emaPower;
  if (!(gamma > 0))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `saveEmaSnapshot: the model's EMA is not a power-function EMA (emaPower ${gamma}); post-hoc EMA needs OptimizerOptions.emaPower > 0`);
  const step = model.step;
  if (step < 1) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', 'saveEmaSnapshot: the model has taken no optimizer step yet');
  const tensors: Record<string, Tensor> = {};
  try {
    for (const p of model.parameters()) tensors[p.name] = model.getParameter(p.name, 'ema');
    writeSafetensors(file, tensors, { format: 'decoflow-dit/1', config: JSON.stringify(model.config), [SNAPSHOT_KEY]: JSON.stringify({ step, gamma }) });
  } finally {
    Object.values(tensors).forEach((t) => t.dispose());
  }
}

/** Where runs put the snapshot of step `step` in their snapshot folder (sorted by name = by step). */
export function emaSnapshotPath(dir: string, step: number): string {
  return path.join(dir, `ema-${String(step).padStart(7, '0')}.safetensors`);
}

/** A snapshot's profile, from its metadata (the header only). */
export function readSnapshotProfile(file: string): EmaProfile {
  const meta = readSafetensorsMetadata(file)[SNAPSHOT_KEY];
  if (meta === undefined) throw decoflowError('ERR_DECOFLOW_FORMAT', `posthocEma: ${file}: not an EMA snapshot (no '${SNAPSHOT_KEY}' in its metadata; saveEmaSnapshot writes them)`);
  let p: EmaProfile;
  try {
    p = JSON.parse(meta) as EmaProfile;
  } catch {
    throw decoflowError('ERR_DECOFLOW_FORMAT', `posthocEma: ${file}: its '${SNAPSHOT_KEY}' metadata is not JSON`);
  }
  if (!(Number.isInteger(p?.step) && p.step >= 1 && Number.isFinite(p.gamma) && p.gamma > 0))
    throw decoflowError('ERR_DECOFLOW_FORMAT', `posthocEma: ${file}: expected '${SNAPSHOT_KEY}' {step >= 1, gamma > 0}, got ${meta}`);
  return { step: p.step, gamma: p.gamma };
}

/** What posthocEma wrote. */
export interface PosthocEmaResult extends PosthocFit {
  gamma: number;
  sigmaRel: number;
  step: number;
  /** The snapshot files used, oldest first, in the order of `coefficients`. */
  files: string[];
}

export interface PosthocEmaOptions {
  /** The EMA length wanted, as EDM2's sigmaRel (e.g. 0.05 or 0.10) or as the exponent gamma; exactly one. */
  sigmaRel?: number;
  gamma?: number;
  /** The step the EMA is read at (default: the newest snapshot's); only snapshots up to it are used. */
  step?: number;
}

/**
 * Writes a checkpoint whose weights are the power EMA `options` asks for, reconstructed from the
 * snapshots saveEmaSnapshot wrote during one run (e.g. `decoflow train --ema-snapshot-every`). Load
 * it with Model.load and sample as usual; its metadata records the fit ("posthocEma"). Atomic.
 */
export function posthocEma(files: string[], out: string, options: PosthocEmaOptions): PosthocEmaResult {
  if ((options.sigmaRel === undefined) === (options.gamma === undefined))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', 'posthocEma: give exactly one of sigmaRel and gamma');
  if (options.gamma !== undefined && !(Number.isFinite(options.gamma) && options.gamma >= 0))
    throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `posthocEma: gamma: expected a finite number >= 0, got ${options.gamma}`);
  if (!Array.isArray(files) || files.length === 0) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', 'posthocEma: files: expected at least one snapshot file');
  const gamma = options.gamma ?? gammaOfSigmaRel(options.sigmaRel!);
  const snaps = files.map((file) => ({ file, ...readSnapshotProfile(file) }));
  const step = options.step ?? Math.max(...snaps.map((s) => s.step));
  const used = snaps.filter((s) => s.step <= step).sort((a, b) => a.step - b.step);
  if (used.length === 0) throw decoflowError('ERR_DECOFLOW_ARG_VALUE', `posthocEma: step: no snapshot at or before step ${step}`);
  const fit = posthocEmaCoefficients(used, { step, gamma });
  let first: ReturnType<typeof readSafetensors> | undefined;
  const sums = new Map<string, { acc: Float64Array; shape: number[] }>();
  used.forEach((s, i) => {
    const c = readSafetensors(s.file);
    try {
      if (first === undefined) first = { tensors: {}, metadata: c.metadata };
      else if (c.metadata.config !== first.metadata.config) throw decoflowError('ERR_DECOFLOW_FORMAT', `posthocEma: ${s.file}: another model config than ${used[0].file}`);
      else if (Object.keys(c.tensors).length !== sums.size) throw decoflowError('ERR_DECOFLOW_FORMAT', `posthocEma: ${s.file}: ${Object.keys(c.tensors).length} tensors, ${used[0].file} has ${sums.size}`);
      for (const [name, t] of Object.entries(c.tensors)) {
        const values = t.dataSync() as Float32Array;
        let sum = sums.get(name);
        if (!sum) {
          if (i > 0) throw decoflowError('ERR_DECOFLOW_FORMAT', `posthocEma: ${s.file}: ${name} is not in ${used[0].file}`);
          sums.set(name, (sum = { acc: new Float64Array(values.length), shape: [...t.shape] }));
        }
        if (sum.acc.length !== values.length) throw decoflowError('ERR_DECOFLOW_FORMAT', `posthocEma: ${s.file}: ${name} has another shape than in ${used[0].file}`);
        const w = fit.coefficients[i];
        for (let k = 0; k < values.length; k++) sum.acc[k] += w * values[k];
      }
    } finally {
      Object.values(c.tensors).forEach((t) => t.dispose());
    }
  });
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, { acc, shape }] of sums) tensors[name] = Tensor.from(Float32Array.from(acc), shape);
    const result: PosthocEmaResult = { ...fit, gamma, sigmaRel: sigmaRelOfGamma(gamma), step, files: used.map((s) => s.file) };
    const { [SNAPSHOT_KEY]: _, ...metadata } = first!.metadata;
    metadata.posthocEma = JSON.stringify({ gamma, sigmaRel: result.sigmaRel, step, relativeError: fit.relativeError, snapshots: used.length });
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    writeSafetensors(out, tensors, metadata);
    return result;
  } finally {
    Object.values(tensors).forEach((t) => t.dispose());
  }
}
