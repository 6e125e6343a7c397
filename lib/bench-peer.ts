// The PyTorch peer of `decoflow bench --compare torch`: finds a Python with PyTorch 2.x, then keeps
// one python/bench_peer.py process for the whole run and asks it for each row in turn (one JSON line
// each way), so decoflow and PyTorch take turns on the same machine with the same threads and device.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { PeerRow } from './bench-rows';
import { root } from './native';

/** How long a row may take on the peer's side before the peer is given up (warm-up included). */
const ROW_TIMEOUT_MS = 15 * 60 * 1000;

export interface BenchTiming {
  /** Untimed calls first. */
  warmup: number;
  /** Timed calls: at least minReps, then until budgetMs has passed, at most maxReps. */
  minReps: number;
  maxReps: number;
  budgetMs: number;
}

export interface PeerInfo {
  python: string;
  torch: string;
  pythonVersion: string;
  cuda: boolean;
}

export type PeerLookup = { found: true; peer: PeerInfo } | { found: false; reason: string };

const PROBE =
  'import json, sys\n' +
  'try:\n' +
  '    import torch\n' +
  'except Exception as e:\n' +
  '    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)})); sys.exit(0)\n' +
  'print(json.dumps({"torch": torch.__version__, "python": sys.version.split()[0], "cuda": bool(torch.cuda.is_available())}))\n';

function probe(python: string): PeerLookup {
  const r = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return { found: false, reason: `${python}: ${code === 'ENOENT' ? 'not found' : r.error.message}` };
  }
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  let out: { torch?: string; python?: string; cuda?: boolean; error?: string };
  try {
    out = JSON.parse(last);
  } catch {
    const why = (r.stderr ?? '').trim().split('\n').pop() || `exit code ${r.status}`;
    return { found: false, reason: `${python}: ${why}` };
  }
  if (out.error) return { found: false, reason: `${python}: ${out.error}` };
  const major = Number(String(out.torch).split('.')[0]);
  if (!(major >= 2))
    return { found: false, reason: `${python} has PyTorch ${out.torch}; the peer needs PyTorch 2.x (scaled_dot_product_attention)` };
  return { found: true, peer: { python, torch: String(out.torch), pythonVersion: String(out.python), cuda: Boolean(out.cuda) } };
}

/**
 * A Python with PyTorch 2.x: `python` when given (and only it), else $DECOFLOW_TORCH_PYTHON, python3
 * and python from the PATH, the first that imports torch 2.x. Says why when there is none.
 */
export function findTorchPeer(python?: string): PeerLookup {
  const candidates = python ? [python] : [process.env.DECOFLOW_TORCH_PYTHON, 'python3', 'python'].filter((p): p is string => !!p);
  const reasons: string[] = [];
  for (const c of candidates) {
    const r = probe(c);
    if (r.found) return r;
    reasons.push(r.reason);
  }
  return { found: false, reason: `no PyTorch 2.x found (${reasons.join('; ')}); pass --python PATH to a Python that has it` };
}

interface Pending {
  resolve: (samples: number[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A running python/bench_peer.py. */
export class TorchPeer {
  #child: ChildProcessWithoutNullStreams;
  #pending = new Map<number, Pending>();
  #next = 0;
  #stderr: string[] = [];
  #exited: string | null = null;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    readline.createInterface({ input: child.stdout }).on('line', (line) => this.#onLine(line));
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      this.#stderr.push(line);
      if (this.#stderr.length > 20) this.#stderr.shift();
    });
    child.on('exit', (code, signal) => this.#fail(`the PyTorch peer exited (${signal ?? `code ${code}`})`));
    child.on('error', (e) => this.#fail(`the PyTorch peer could not run: ${e.message}`));
  }

  /** Starts the peer with `threads` threads on `device` and waits until it is ready. */
  static async start(peer: PeerInfo, threads: number, device: string): Promise<{ peer: TorchPeer; torch: string; threads: number }> {
    const script = path.join(root, 'python', 'bench_peer.py');
    const env = {
      ...process.env,
      OMP_NUM_THREADS: String(threads),
      MKL_NUM_THREADS: String(threads),
      DECOFLOW_THREADS: String(threads),
      DECOFLOW_DEVICE: device,
      DECOFLOW_ROOT: root,
      PYTHONUNBUFFERED: '1',
    };
    const child = spawn(peer.python, [script], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const p = new TorchPeer(child);
    const ready = (await p.#request({ hello: true })) as unknown as { torch: string; threads: number };
    return { peer: p, torch: ready.torch, threads: ready.threads };
  }

  /** The peer's timings (ms per call) of a row. */
  async run(row: PeerRow, timing: BenchTiming): Promise<number[]> {
    return (await this.#request({ row, timing })) as number[];
  }

  close(): void {
    this.#child.stdin.end();
    if (this.#exited === null) this.#child.kill();
  }

  #request(body: Record<string, unknown>): Promise<number[]> {
    if (this.#exited !== null) return Promise.reject(new Error(this.#exited));
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.#child.kill();
        reject(new Error(`the PyTorch peer took longer than ${ROW_TIMEOUT_MS / 60000} minutes`));
      }, ROW_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      this.#child.stdin.write(JSON.stringify({ id, ...body }) + '\n');
    });
  }

  #onLine(line: string): void {
    let msg: { id?: number; ms?: number[]; error?: string; [k: string]: unknown };
    try {
      msg = JSON.parse(line);
    } catch {
      this.#stderr.push(line); // stray output of a library: kept for error messages
      return;
    }
    const p = msg.id === undefined ? undefined : this.#pending.get(msg.id);
    if (!p) return;
    this.#pending.delete(msg.id!);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new Error(msg.error));
    else p.resolve((msg.ms ?? msg) as number[]);
  }

  #fail(why: string): void {
    if (this.#exited !== null) return;
    const tail = this.#stderr.slice(-3).join(' | ');
    this.#exited = tail ? `${why}: ${tail}` : why;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new Error(this.#exited));
      this.#pending.delete(id);
    }
  }
}
