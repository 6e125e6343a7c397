// scripts/leaks.js at a tenth of its counts (1,000 tensors, 100 async matmuls, 10 model / trainer /
// sampler cycles): live tensors and bytes back to where they were, RSS within its bound. The full
// counts are run by hand (bench/RESULTS.md).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { libEntry, removeCli } from './support/cli';

afterAll(() => removeCli());

test('tensor, matmul and model cycles leave nothing live', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, '..', 'scripts', 'leaks.js'), '--scale', '0.1'], {
    encoding: 'utf8',
    env: { ...process.env, DECOFLOW_LIB: libEntry() },
  });
  expect(r.stderr).toBe('');
  const lines = r.stdout.trim().split('\n');
  expect(lines.filter((l) => / ok$/.test(l))).toHaveLength(3);
  expect(lines[lines.length - 1]).toMatch(/at the end 0 live tensors, 0 live bytes/);
  expect(r.status).toBe(0);
});
