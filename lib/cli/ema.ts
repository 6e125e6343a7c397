// decoflow ema: post-hoc EMA. From the EMA snapshots of a run trained with --ema-power and
// --ema-snapshot-every, writes one checkpoint per EMA length asked for (EDM2's sigma_rel).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decoflowError } from '../errors';
import { gammaOfSigmaRel, MAX_SIGMA_REL, posthocEma } from '../posthoc-ema';
import { parseArgs, usage, UsageError, type FlagSpec } from './args';

export const EMA_FLAGS: Record<string, FlagSpec> = {
  snapshots: { kind: 'string', help: "the run's snapshot folder (decoflow train writes OUT/ema-snapshots)" },
  'sigma-rel': { kind: 'list', help: `EMA lengths as sigma_rel, in (0, ${MAX_SIGMA_REL.toFixed(3)}] (EDM2: 0.05-0.15 typical)`, default: [0.05, 0.1] },
  step: { kind: 'int', help: 'read the EMA at this step (default: the newest snapshot)' },
  out: { kind: 'string', help: 'output folder: one ema-<sigma_rel>.safetensors per length', default: '.' },
  help: { kind: 'bool', help: 'this text' },
};

export async function emaCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, EMA_FLAGS);
  if (a.help) {
    process.stdout.write(usage('ema', 'Post-hoc EMA: reconstructs power-function EMAs of other lengths from a run\'s EMA snapshots.', EMA_FLAGS));
    return 0;
  }
  const dir = a.snapshots as string | undefined;
  if (!dir) throw new UsageError('--snapshots: expected the folder of a run\'s EMA snapshots');
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw decoflowError('ERR_DECOFLOW_IO', `--snapshots: ${dir} is not a folder`);
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => path.join(dir, f));
  if (files.length === 0) throw decoflowError('ERR_DECOFLOW_IO', `--snapshots: no .safetensors files in ${dir}`);
  const lengths = a['sigma-rel'] as number[];
  for (const s of lengths) checkSigmaRel('--sigma-rel', s);
  const out = a.out as string;
  for (const sigmaRel of lengths) {
    const file = path.join(out, `ema-${sigmaRel}.safetensors`);
    const r = posthocEma(files, file, { sigmaRel, step: a.step as number | undefined });
    process.stdout.write(
      `${file}: sigma_rel ${sigmaRel} (gamma ${r.gamma.toFixed(2)}) at step ${r.step} from ${r.files.length} snapshots, profile error ${(100 * r.relativeError).toFixed(2)} %\n`,
    );
  }
  return 0;
}

/** The flag train and experiment take beside --ema-power: the same power EMA named by its length. */
export const EMA_SIGMA_REL_FLAG: FlagSpec = {
  kind: 'number',
  help: `power-function EMA given by its relative length (EDM2's sigma_rel, in (0, ${MAX_SIGMA_REL.toFixed(3)}]; 0.10 is --ema-power 6.94) instead of --ema-power`,
};

/**
 * The power EMA's exponent from --ema-power or --ema-sigma-rel (0: the decay EMA). sigma_rel is the
 * number decoflow ema and EDM2 speak in, so a user need not convert it to an exponent by hand.
 */
export function emaPowerFromFlags(a: Record<string, unknown>): number {
  const power = a['ema-power'] as number;
  const sigmaRel = a['ema-sigma-rel'] as number | undefined;
  if (sigmaRel === undefined) return power;
  if (power !== 0) throw new UsageError('--ema-sigma-rel: give it or --ema-power, not both (they name the same EMA)');
  checkSigmaRel('--ema-sigma-rel', sigmaRel);
  return gammaOfSigmaRel(sigmaRel);
}

/** A usage error (exit 2) naming the flag, before gammaOfSigmaRel's argument error could. */
function checkSigmaRel(flag: string, sigmaRel: number): void {
  if (!(sigmaRel > 0 && sigmaRel <= MAX_SIGMA_REL)) throw new UsageError(`${flag}: expected a number in (0, ${MAX_SIGMA_REL.toFixed(3)}], got ${sigmaRel}`);
}
