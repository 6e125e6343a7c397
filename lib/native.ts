// Loads the native addon once. DECOFLOW_NATIVE_PATH points at a given build; otherwise node-gyp-build
// chooses within the package: a build from source (build/Release, then build/Debug) when one exists,
// which only happens on purpose (`npm rebuild decoflow --build-from-source`, a repository checkout),
// else the prebuilt addon of prebuilds/<platform>-<arch>/ for Node-API 8 and this libc, which every
// Node >= 18 loads.
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

const req = createRequire(__filename);

function locate(): string {
  const given = process.env.DECOFLOW_NATIVE_PATH;
  if (given) {
    if (fs.existsSync(given)) return path.resolve(given);
    throw decoflowError('ERR_DECOFLOW_NATIVE_MISSING', `decoflow: DECOFLOW_NATIVE_PATH=${given}: no such file`);
  }
  try {
    return (req('node-gyp-build') as { path(dir: string): string }).path(root);
  } catch (e) {
    throw decoflowError(
      'ERR_DECOFLOW_NATIVE_MISSING',
      `decoflow: no native addon for ${process.platform}-${process.arch} (${(e as Error).message.split('\n')[0]}). ` +
        'The package ships a prebuilt one for linux-x64 (glibc); elsewhere build it from source: ' +
        '`npm rebuild decoflow --build-from-source` (needs a C++17 compiler, Python and node-addon-api; see the README).',
    );
  }
}

/** The addon file in use. */
export const nativePath = locate();

function load(file: string): NativeBinding {
  try {
    return req(file) as NativeBinding;
  } catch (e) {
    throw decoflowError(
      'ERR_DECOFLOW_NATIVE_MISSING',
      `decoflow: the native addon ${file} does not load here: ${(e as Error).message.split('\n')[0]}. ` +
        'Build it from source: `npm rebuild decoflow --build-from-source` (see the README).',
    );
  }
}

export const native: NativeBinding = load(nativePath);

/**
 * The CUDA backend's library of the optional package @decoflow/<platform>-<arch>-cuda, when it is
 * installed (`npm install @decoflow/linux-x64-cuda`); the core also looks next to the addon first.
 */
export function cudaPackageLibrary(): string | undefined {
  const name = `@decoflow/${process.platform}-${process.arch}-cuda`;
  try {
    const dir = path.dirname(req.resolve(`${name}/package.json`, { paths: [root] }));
    const lib = path.join(dir, 'lib', 'libdecoflow_cuda.so');
    return fs.existsSync(lib) ? lib : undefined;
  } catch {
    return undefined;
  }
}

const cudaLibrary = cudaPackageLibrary();
if (cudaLibrary) native.setCudaLibraryCandidates([cudaLibrary]);
