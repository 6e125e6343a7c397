#!/usr/bin/env node
// Expands the source patterns of native/sources.json (the one list shared with CMakeLists.txt) for
// binding.gyp: `node scripts/sources.js core addon` prints the files, space separated, sorted.
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
  return fs.readdirSync(abs).filter((f) => f.endsWith(ext)).sort().map((f) => `${dir}/${f}`);
}

const out = [];
for (const group of process.argv.slice(2)) {
  if (!Array.isArray(lists[group])) throw new Error(`sources.js: unknown group '${group}'`);
  for (const pattern of lists[group]) out.push(...expand(pattern));
}
console.log(out.join(' '));
