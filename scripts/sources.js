#!/usr/bin/env node
// Reads native/sources.json (the one list shared with CMakeLists.txt) for binding.gyp:
//   node scripts/sources.js core addon       the files of these groups, space separated, sorted
//   node scripts/sources.js --flags avx2     the compiler flags of one CPU level: in a native build
//                                            (DECOFLOW_PORTABLE unset), -march=native for the best
//                                            level this machine runs, as CMakeLists.txt does
//   node scripts/sources.js --level avx2     its number (DF_CPU_LEVEL)
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const lists = JSON.parse(fs.readFileSync(path.join(root, 'native', 'sources.json'), 'utf8'));

// Patterns are "folder/*.ext": every file of that extension directly in the folder.
function expand(pattern) {
  const dir = path.dirname(pattern);
  const ext = path.extname(pattern);
  if (path.basename(pattern) !== `*${ext}`) throw new Error(`sources.js: unsupported pattern '${pattern}'`);
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs, { withFileTypes: true })
    .filter((f) => f.isFile() && f.name.endsWith(ext))
    .map((f) => f.name)
    .sort()
    .map((f) => `${dir}/${f}`);
}

function level(name) {
  const i = lists.cpu_level_flags.findIndex((l) => l.name === name);
  if (i < 0) throw new Error(`sources.js: unknown CPU level '${name}'`);
  return { index: i, ...lists.cpu_level_flags[i] };
}

// The best CPU level of this machine, from the compiler's macros for -march=native.
function nativeLevel() {
  const cxx = process.env.CXX || 'c++';
  const r = require('child_process').spawnSync(cxx, ['-march=native', '-dM', '-E', '-x', 'c++', '/dev/null'], {
    encoding: 'utf8',
  });
  const has = (...macros) => macros.every((m) => new RegExp(`\\b${m}\\b`).test(r.stdout || ''));
  if (has('__AVX512F__', '__AVX512BW__', '__AVX512CD__', '__AVX512DQ__', '__AVX512VL__')) return 'avx512';
  if (has('__AVX2__', '__FMA__', '__BMI2__')) return 'avx2';
  return 'baseline';
}

const args = process.argv.slice(2);
if (args[0] === '--flags') {
  const native = !process.env.DECOFLOW_PORTABLE && process.arch === 'x64' && nativeLevel() === args[1];
  console.log(native ? '-march=native -Wno-psabi' : level(args[1]).flags.join(' '));
} else if (args[0] === '--level') {
  console.log(level(args[1]).index);
} else {
  const out = [];
  for (const group of args) {
    if (!Array.isArray(lists[group])) throw new Error(`sources.js: unknown group '${group}'`);
    for (const pattern of lists[group]) out.push(...expand(pattern));
  }
  // as CMakeLists.txt: a per-level source keeps its code in the level's namespace
  if (args.includes('cpu_levels'))
    for (const f of out)
      if (!/inline namespace DF_CPU_NS/.test(fs.readFileSync(path.join(root, f), 'utf8')))
        throw new Error(`sources.js: ${f} is compiled once per CPU level but has no \`inline namespace DF_CPU_NS\`: move code compiled once to native/ops/shared`);
  console.log(out.join(' '));
}
