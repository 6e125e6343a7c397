// Faults found by trying decoflow as a new user would (issue 15): temporaries orphaned by a kill
// during a save, a directory given as a checkpoint, safetensors data not covered exactly once,
// checkpoints holding NaN/Inf, a second call on a busy model, and `decoflow train` killed with
// SIGKILL at random moments and resumed. (The fsync of the directory after the rename is checked by
// the native test test_io, which sees the system calls.)
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Model, readSafetensors, removeStaleTemps, Tensor, Trainer, writeSafetensors, type ModelConfig } from '../lib';
import { root } from '../lib/native';
import { caught, caughtAsync } from './helpers';
import { cliEntry, removeCli } from './support/cli';

const ADDON = path.join(root, 'build', 'Release', 'decoflow.node');
const small: ModelConfig = { stages: 2, channels: 3, height: 16, width: 16, patchSizes: [2, 4], hidden: 48, depth: 2, heads: 4, numClasses: 8 };
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-reliability-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  removeCli();
});

const temps = (d: string) => fs.readdirSync(d).filter((f) => /\.tmp-\d+$|\.tmp$/.test(f));

/** A pid that no process has any more. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('temporaries of a killed save', () => {
  test('the next save or load in the folder removes those of dead writers, and only those', () => {
    const sub = fs.mkdtempSync(path.join(dir, 'stale-'));
    const dead = deadPid();
    const plant = () => {
      for (const f of [`m.safetensors.tmp-${dead}`, `other.safetensors.tmp-${dead}`, `m.safetensors.tmp-${process.ppid}`, `notes.txt.tmp-${dead}`])
        fs.writeFileSync(path.join(sub, f), 'partial');
    };
    plant();
    const m = Model.create(small, { maxBatch: 1 });
    m.save(path.join(sub, 'm.safetensors'));
    const kept = [`m.safetensors.tmp-${process.ppid}`, `notes.txt.tmp-${dead}`].sort();
    expect(temps(sub).sort()).toEqual(kept);
    plant();
    Model.load(path.join(sub, 'm.safetensors')).dispose();
    expect(temps(sub).sort()).toEqual(kept);
    m.dispose();
  });

  test('SIGKILL during saves leaves at most one temporary, which the next save removes', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'kill-save-'));
    const file = path.join(sub, 'model.safetensors');
    const script = `
      const n = require(${JSON.stringify(ADDON)});
      const h = n.modelCreate(${JSON.stringify(JSON.stringify({ ...small, hidden: 256, depth: 4 }))}, { maxBatch: 1 });
      // One whole save before 'ready': on a loaded machine no save might finish before the first kill,
      // and the test is about kills during a save that replaces a checkpoint.
      n.modelSave(h, ${JSON.stringify(file)}, {});
      process.stdout.write('ready\\n');
      for (;;) n.modelSave(h, ${JSON.stringify(file)}, {});`;
    let orphans = 0;
    for (let kill = 0; kill < 4; kill++) {
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      orphans += temps(sub).length;
      expect(temps(sub).length).toBeLessThanOrEqual(1);
    }
    // Whatever the kills left, the checkpoint is whole and the next save leaves no temporary.
    const m = Model.load(file);
    m.save(file);
    expect(temps(sub)).toEqual([]);
    expect(fs.readdirSync(sub)).toEqual(['model.safetensors']);
    m.dispose();
    process.stderr.write(`reliability: ${orphans} temporaries orphaned by 4 kills during saves, all removed\n`);
  });
});

test('Model.load of a directory is an I/O error naming it', () => {
  const e = caught(() => Model.load(dir));
  expect(e.code).toBe('ERR_DECOFLOW_IO');
  expect(e.message).toContain(dir);
  expect(e.message).toMatch(/is a directory/);
});

describe('safetensors data covered exactly once', () => {
  const rewrite = (file: string, edit: (header: Record<string, { data_offsets: number[] }>) => void, extra = 0) => {
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
    edit(header);
    const hb = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    const out = path.join(dir, `edited-${Math.random().toString(36).slice(2)}.safetensors`);
    fs.writeFileSync(out, Buffer.concat([len, hb, bytes.subarray(8 + n), Buffer.alloc(extra)]));
    return out;
  };
  const file = () => {
    const p = path.join(dir, 'three.safetensors');
    const ts = { a: Tensor.zeros([4]), b: Tensor.zeros([1]), c: Tensor.zeros([1]) };
    writeSafetensors(p, ts);
    Object.values(ts).forEach((t) => t.dispose());
    return p; // a: [0, 16), b: [16, 20), c: [20, 24)
  };

  test.each([
    ['a tensor inside another', (h: Record<string, { data_offsets: number[] }>) => {
      h.b.data_offsets = [4, 8];
      h.c.data_offsets = [20, 24];
    }, 0, /overlap/],
    ['a hole between tensors', (h: Record<string, { data_offsets: number[] }>) => {
      h.c.data_offsets = [24, 28];
    }, 4, /bytes 20 to 24 belong to no tensor/],
    ['bytes after the last tensor', () => {}, 8, /bytes 24 to 32 belong to no tensor/],
  ])('%s is refused', (_name, edit, extra, message) => {
    const p = rewrite(file(), edit, extra);
    const e = caught(() => readSafetensors(p));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
    expect(e.message).toMatch(message);
  });

  test('the untouched file reads', () => {
    const { tensors } = readSafetensors(rewrite(file(), () => {}));
    expect(Object.keys(tensors).sort()).toEqual(['a', 'b', 'c']);
    Object.values(tensors).forEach((t) => t.dispose());
  });
});

describe('checkpoints holding NaN or infinity', () => {
  /** A saved checkpoint with `value` written into element `index` of tensor `name`. */
  const poisoned = (name: string, value: number, index = 3) => {
    const m = Model.create(small, { maxBatch: 1, seed: 3 });
    const p = path.join(dir, `poisoned-${name.replace(/\W/g, '_')}-${value}.safetensors`);
    m.save(p);
    m.dispose();
    const bytes = fs.readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
    bytes.writeFloatLE(value, 8 + n + header[name].data_offsets[0] + 4 * index);
    fs.writeFileSync(p, bytes);
    return p;
  };

  test.each([
    ['a weight', 'blocks.0.attn.qkv.weight', NaN, /'blocks\.0\.attn\.qkv\.weight' holds NaN at element 3/],
    ['an EMA weight', 'ema.final_layers.1.linear.bias', Infinity, /'ema\.final_layers\.1\.linear\.bias' holds infinity/],
    ['an AdamW moment', 'adam.v.blocks.1.mlp.fc1.weight', -Infinity, /'adam\.v\.blocks\.1\.mlp\.fc1\.weight' holds infinity/],
  ])('%s is refused unless allowNonFinite', (_what, name, value, message) => {
    const p = poisoned(name, value);
    const e = caught(() => Model.load(p));
    expect(e.code).toBe('ERR_DECOFLOW_NON_FINITE');
    expect(e.message).toMatch(message);
    expect(e.message).toContain(p);
    const m = Model.load(p, { allowNonFinite: true });
    const which = name.startsWith('ema.') ? 'ema' : name.startsWith('adam.') ? null : 'param';
    if (which) {
      const t = m.getParameter(name.replace(/^ema\./, ''), which);
      expect((t.dataSync() as Float32Array)[3]).toBe(value);
      t.dispose();
    }
    m.dispose();
    expect(caught(() => Model.load(p, { allowNonFinite: 'yes' as never })).code).toBe('ERR_DECOFLOW_ARG_TYPE');
  });
});

describe('a second call on a busy model', () => {
  test('gets ERR_DECOFLOW_BUSY, and succeeds once the first is done', async () => {
    const m = Model.create(small, { maxBatch: 4 });
    const trainer = new Trainer(m, { stageProbs: [0.5, 0.5] });
    const images = Tensor.randn([4, 3, 16, 16], { seed: 1 });
    const labels = Tensor.from(Int32Array.from([0, 1, 2, 3]), [4], { dtype: 'i32' });
    const first = trainer.step(images, labels);
    // both refusals come at the call, while the first step runs (nothing awaited in between)
    const save = caught(() => m.save(path.join(dir, 'busy.safetensors')));
    const second = caughtAsync(() => trainer.step(images, labels));
    expect(save.code).toBe('ERR_DECOFLOW_BUSY');
    expect((await second).code).toBe('ERR_DECOFLOW_BUSY');
    expect((await second).message).toMatch(/busy/);
    expect((await first).step).toBe(1);
    expect((await trainer.step(images, labels)).step).toBe(2);
    trainer.dispose();
    for (const t of [images, labels]) t.dispose();
    m.dispose();
  });
});

describe('decoflow train killed with SIGKILL and resumed', () => {
  const STEPS = 150;
  const args = (out: string) => [
    'train', '--data', 'shapes', '--image-size', '16', '--grid', '4', '--model', 'tiny', '--batch', '4', '--stages', '2',
    '--steps', String(STEPS), '--checkpoint-every', '7', '--warmup', '5', '--threads', '2', '--out', out,
  ];
  const run = (argv: string[], killAfterMs?: number) =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }>((resolve) => {
      const child = spawn(process.execPath, [cliEntry(), ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let started = 0;
      let timer: NodeJS.Timeout | undefined;
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // the clock starts once the run has announced itself (its run.json is written)
        if (!started && /decoflow train: /.test(stderr)) {
          started = Date.now();
          if (killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stderr, ms: Date.now() - started });
      });
    });

  test('ends bit-identical to an uninterrupted run, with no stray files', async () => {
    const straight = path.join(dir, 'straight');
    const r = await run(args(straight));
    expect(r.stderr).not.toMatch(/Error|ERR_/);
    expect(r.code).toBe(0);

    const killed = path.join(dir, 'killed');
    const kills: string[] = [];
    let resume = false;
    const msPerStep = r.ms / STEPS;
    let step = 0;
    for (let i = 0; i < 6; i++) {
      // a random moment within the first half of what is left to do: during steps, saves or start-up
      const delay = Math.round(Math.random() * 0.5 * msPerStep * (STEPS - step));
      const k = await run([...args(killed), ...(resume ? ['--resume'] : [])], delay);
      step = fs.existsSync(path.join(killed, 'run.json')) ? JSON.parse(fs.readFileSync(path.join(killed, 'run.json'), 'utf8')).step : 0;
      kills.push(`${delay} ms: ${k.signal ?? `exit ${k.code}`} at step ${step}`);
      if (k.code === 0) break; // finished before the kill
      expect(k.signal).toBe('SIGKILL');
      resume = true;
    }
    const last = await run([...args(killed), '--resume']);
    expect(last.code).toBe(0);
    process.stderr.write(`reliability: kills of decoflow train: ${kills.join('; ')}\n`);
    expect(kills.filter((k) => k.includes('SIGKILL')).length).toBeGreaterThanOrEqual(3);

    const a = fs.readFileSync(path.join(straight, 'checkpoint.safetensors'));
    const b = fs.readFileSync(path.join(killed, 'checkpoint.safetensors'));
    expect(readSafetensors(path.join(killed, 'checkpoint.safetensors')).metadata.step).toBe(String(STEPS));
    expect(b.equals(a)).toBe(true);
    expect(fs.readFileSync(path.join(killed, 'samples.png')).equals(fs.readFileSync(path.join(straight, 'samples.png')))).toBe(true);
    const want = ['checkpoint.safetensors', 'run.json', 'samples-previews.png', 'samples.png'];
    expect(fs.readdirSync(killed).sort()).toEqual(want);
    expect(fs.readdirSync(straight).sort()).toEqual(want);
  });

  test('removeStaleTemps removes the run.json and PNG temporaries of dead writers', () => {
    const sub = fs.mkdtempSync(path.join(dir, 'stale-ts-'));
    const dead = deadPid();
    const names = [`.run.json.${dead}.1700000000000.tmp`, `.samples.png.${dead}.1.tmp`, `checkpoint.safetensors.tmp-${dead}`, `.run.json.${process.pid}.5.tmp`, 'keep.tmp'];
    for (const f of names) fs.writeFileSync(path.join(sub, f), 'x');
    expect(removeStaleTemps(sub).sort()).toEqual(names.slice(0, 3).sort());
    expect(fs.readdirSync(sub).sort()).toEqual(names.slice(3).sort());
  });
});
