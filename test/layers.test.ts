// The native code's layers only point down: core <- ops <- model <- dfm <- addon (io, data and eval
// beside them), checked on every #include; and the CUDA backend sees only the core's C ABI and the
// ops' shape headers. A new include that points up fails here.
import * as fs from 'node:fs';
import * as path from 'node:path';

const NATIVE = path.join(__dirname, '..', 'native');
const CUDA = path.join(__dirname, '..', 'cuda');

// What each folder of native/ may include from the others.
const ALLOWED: Record<string, string[]> = {
  core: [],
  io: ['core'],
  ops: ['core'],
  data: ['core', 'io'],
  eval: ['core', 'ops', 'io'],
  model: ['core', 'ops', 'io'],
  dfm: ['core', 'ops', 'model', 'io'],
  addon: ['core', 'ops', 'model', 'dfm', 'io', 'data', 'eval'],
};

function includes(file: string): string[] {
  return [...fs.readFileSync(file, 'utf8').matchAll(/^#include "([^"]+)"/gm)].map((m) => m[1]);
}

// The sources of a folder and of its subfolders (native/ops/shared belongs to ops).
function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((f) =>
    f.isDirectory() ? sources(path.join(dir, f.name)) : /\.(h|cpp|cu|cuh)$/.test(f.name) ? [path.join(dir, f.name)] : [],
  );
}

// The layer (first folder under native/) that an #include "..." of `file` names, if any.
function layerOf(file: string, inc: string): string | undefined {
  const rel = path.relative(NATIVE, path.resolve(path.dirname(file), inc));
  return rel.startsWith('..') ? undefined : rel.split(path.sep)[0];
}

describe('layers only point down', () => {
  test('every folder of native/ is known', () => {
    const folders = fs.readdirSync(NATIVE, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    expect(folders.sort()).toEqual(Object.keys(ALLOWED).sort());
  });

  test.each(Object.keys(ALLOWED))('native/%s includes only the layers below it', (layer) => {
    const bad: string[] = [];
    const files = sources(path.join(NATIVE, layer));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files)
      for (const inc of includes(file)) {
        const target = layerOf(file, inc);
        if (target && target !== layer && !ALLOWED[layer].includes(target)) bad.push(`${path.relative(NATIVE, file)} includes ${inc}`);
      }
    expect(bad).toEqual([]);
  });

  test('the include check sees through subfolders', () => {
    expect(layerOf(path.join(NATIVE, 'ops', 'shared', 'x.cpp'), '../../core/error.h')).toBe('core');
    expect(layerOf(path.join(NATIVE, 'ops', 'shared', 'x.cpp'), '../../model/dit.h')).toBe('model');
    expect(layerOf(path.join(NATIVE, 'ops', 'x.cpp'), 'gemm.h')).toBe('ops');
  });

  test('the sampler does not include the trainer, the integrator op not the DFM layout', () => {
    for (const f of ['dfm/sampler.h', 'dfm/sampler.cpp', 'dfm/dit_sampler.h', 'dfm/dit_sampler.cpp'])
      expect(includes(path.join(NATIVE, f)).filter((i) => /trainer\.h$/.test(i))).toEqual([]);
    expect(includes(path.join(NATIVE, 'ops/integrator.h')).filter((i) => /dfm\//.test(i))).toEqual([]);
  });

  test('the CUDA backend includes only the core C ABI and the ops headers from native/', () => {
    const bad: string[] = [];
    for (const file of sources(CUDA))
      for (const inc of includes(file)) {
        const m = /^([a-z]+)\//.exec(inc);
        if (m && !['core', 'ops'].includes(m[1])) bad.push(`${path.basename(file)} includes ${inc}`);
      }
    expect(bad).toEqual([]);
    // the ABI speaks of grouped rows, not of DFM's stages
    expect(fs.readFileSync(path.join(NATIVE, 'core', 'cuda_api.h'), 'utf8')).not.toMatch(/StageLayout|dfm\//);
  });
});
