#!/usr/bin/env node
// Prints native source lists from native/sources.json for binding.gyp (space separated).
// Usage: node scripts/sources.js core addon
const path = require('path');
const lists = require(path.join(__dirname, '..', 'native', 'sources.json'));
const out = [];
for (const group of process.argv.slice(2)) {
  if (!Array.isArray(lists[group])) throw new Error(`sources.js: unknown group '${group}'`);
  out.push(...lists[group]);
}
console.log(out.join(' '));
