// A small, strict command-line parser: --name value, --name=value, --flag, --no-flag. Unknown or
// malformed flags are usage errors (exit code 2) with a message naming the flag.
export class UsageError extends Error {
  code = 'ERR_DECOFLOW_USAGE';
}

export type FlagKind = 'string' | 'int' | 'number' | 'bool' | 'list' | 'intlist';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  default?: unknown;
}

export type Parsed = Record<string, unknown>;

export function parseArgs(argv: string[], specs: Record<string, FlagSpec>): Parsed {
  const out: Parsed = {};
  for (const [k, s] of Object.entries(specs)) if (s.default !== undefined) out[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}'`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let spec = specs[name];
    if (!spec && name.startsWith('no-') && specs[name.slice(3)]?.kind === 'bool') {
      out[name.slice(3)] = false;
      continue;
    }
    if (!spec) throw new UsageError(`unknown option --${name}`);
    if (spec.kind === 'bool') {
      out[name] = value === undefined ? true : value !== 'false' && value !== '0';
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value (${spec.help})`);
    }
    out[name] = convert(name, spec, value);
  }
  return out;
}

function convert(name: string, spec: FlagSpec, value: string): unknown {
  const num = (v: string, int: boolean): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n)))
      throw new UsageError(`--${name}: expected ${int ? 'an integer' : 'a number'}, got '${v}'`);
    return n;
  };
  switch (spec.kind) {
    case 'string':
      return value;
    case 'int':
      return num(value, true);
    case 'number':
      return num(value, false);
    case 'list':
      return value.split(',').map((v) => num(v, false));
    case 'intlist':
      return value.split(',').map((v) => num(v, true));
    default:
      return value;
  }
}

export function usage(command: string, summary: string, specs: Record<string, FlagSpec>): string {
  const lines = [`usage: decoflow ${command} [options]`, '', summary, '', 'options:'];
  const flag = (k: string, s: FlagSpec) =>
    `  --${k}${s.kind === 'bool' ? '' : ` <${s.kind === 'list' || s.kind === 'intlist' ? 'a,b,...' : s.kind}>`}`;
  const width = Math.max(30, ...Object.entries(specs).map(([k, s]) => flag(k, s).length + 2));
  for (const [k, s] of Object.entries(specs))
    lines.push(flag(k, s).padEnd(width) + s.help + (s.default !== undefined && s.kind !== 'bool' ? ` (default ${s.default})` : ''));
  return lines.join('\n') + '\n';
}

/** The flags of the commands that run a model: where, and in which compute type. */
export const DEVICE_FLAGS: Record<string, FlagSpec> = {
  device: { kind: 'string', help: "where the model runs: 'cpu', 'cuda' or 'cuda:N'", default: 'cpu' },
  precision: { kind: 'string', help: "compute type: 'f32' or 'bf16' (default: f32 on the cpu, bf16 on cuda)" },
};

/** The Model options of those flags. */
export function deviceOptions(a: Parsed): { device: string; precision?: 'f32' | 'bf16' } {
  const precision = a.precision as string | undefined;
  if (precision !== undefined && precision !== 'f32' && precision !== 'bf16')
    throw new UsageError(`--precision: expected 'f32' or 'bf16', got '${precision}'`);
  return { device: a.device as string, precision: precision as 'f32' | 'bf16' | undefined };
}
