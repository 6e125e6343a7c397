#!/usr/bin/env node
// Reads native/sources.json (the one list shared with CMakeLists.txt) for binding.gyp:
//   node scripts/sources.js core addon       the files of these groups, space separated, sorted
//   node scripts/sources.js --flags avx2     the compiler flags of one CPU level
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

const args = process.argv.slice(2);
if (args[0] === '--flags') {
  console.log(level(args[1]).flags.join(' '));
} else if (args[0] === '--level') {
  console.log(level(args[1]).index);
} else {
  const out = [];
  for (const group of args) {
    if (!Array.isArray(lists[group])) throw new Error(`sources.js: unknown group '${group}'`);
    for (const pattern of lists[group]) out.push(...expand(pattern));
  }
  console.log(out.join(' '));
}
