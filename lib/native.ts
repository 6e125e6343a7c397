// Loads the native addon once. It is built into build/Release by `npm install` (scripts/build-native.js);
// DECOFLOW_NATIVE_PATH points at another build.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { NativeBinding } from '../types/native';
import { decoflowError } from './errors';

function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'decoflow') return dir;
    dir = path.dirname(dir);
  }
  return path.join(__dirname, '..');
}

export const root = packageRoot();

function load(): NativeBinding {
  const candidates = process.env.DECOFLOW_NATIVE_PATH
    ? [process.env.DECOFLOW_NATIVE_PATH]
    : ['build/Release/decoflow.node', 'build/Debug/decoflow.node'].map((p) => path.join(root, p));
  const req = createRequire(__filename);
  for (const file of candidates) {
    if (fs.existsSync(file)) return req(file) as NativeBinding;
  }
  throw decoflowError(
    'ERR_DECOFLOW_NATIVE_MISSING',
    `decoflow: the native addon was not found (looked for ${candidates.join(', ')}). ` +
      'Build it with `npm run build:native` (needs cmake or node-gyp and a C++17 compiler).',
  );
}

export const native: NativeBinding = load();
