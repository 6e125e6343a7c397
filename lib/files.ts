// Durable atomic writes of the TypeScript layer (run.json, PNGs, reports) and the clean-up of the
// temporaries that a killed writer leaves. A write goes to `.<name>.<pid>.<ms>.tmp` in the target's
// folder, is fsynced, renamed over the target, and the folder is fsynced: a crash leaves the old
// file or the new one, never half of one, and a temporary whose process is gone is removed by
// removeStaleTemps (decoflow train calls it on its output folder at every start).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decoflowError } from './errors';

const TEMP = /^\..+\.(\d+)\.\d+\.tmp$/;

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function syncDir(dir: string): Promise<void> {
  const fd = await fs.promises.open(dir, 'r');
  try {
    await fd.sync();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
  } finally {
    await fd.close();
  }
}

/** Writes bytes to `file` atomically and durably: a temp file in the same folder, fsync, rename, fsync of the folder. */
export async function writeFileAtomic(file: string, bytes: Uint8Array | Buffer): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await fs.promises.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = await fs.promises.open(tmp, 'w');
    try {
      await fd.writeFile(bytes);
      await fd.sync();
    } finally {
      await fd.close();
    }
    await fs.promises.rename(tmp, file);
    await syncDir(dir);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw decoflowError('ERR_DECOFLOW_IO', `cannot write ${file}: ${(e as Error).message}`);
  }
}

/**
 * Removes the temporaries in `dir` that writers killed mid-write left: writeFileAtomic's
 * `.<name>.<pid>.<ms>.tmp` and the native checkpoint writer's `<name>.safetensors.tmp-<pid>`, when
 * process `pid` is gone. Returns the names removed.
 */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(TEMP.exec(name)?.[1] ?? /\.safetensors\.tmp-(\d+)$/.exec(name)?.[1] ?? NaN);
    if (!Number.isSafeInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    const file = path.join(dir, name);
    try {
      if (!fs.lstatSync(file).isFile()) continue;
      fs.unlinkSync(file);
      removed.push(name);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}
