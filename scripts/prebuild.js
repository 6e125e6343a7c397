#!/usr/bin/env node
// Makes the prebuilt addon that the package ships: prebuildify (node-gyp, Node-API 8: one binary for
// every Node >= 18) builds binding.gyp for any x86-64 (DECOFLOW_PORTABLE=1: the CPU kernels for each
// CPU level, chosen at load time) in a scratch copy of the sources, so the CMake build in build/
// stays. Then it checks the instruction sets (scripts/check-isa.js), strips the binary, puts it in
// prebuilds/<platform>-<arch>/ and reports its size and the newest glibc symbol version it needs.
//   npm run prebuildify            (JOBS=n: parallel compiles, default 2)
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.join(__dirname, '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-prebuild-'));

function run(cmd, args, options = {}) {
  console.log(`prebuild: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...options });
  if (r.status !== 0) {
    console.error(`prebuild: ${cmd} failed (${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

// The newest GLIBC_x.y (and GLIBCXX_) version that a binary's dynamic symbols need.
const newer = (a, b) => a.localeCompare(b, undefined, { numeric: true }) > 0;
function newestVersions(file) {
  const text = execFileSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const newest = {};
  for (const m of text.matchAll(/\((GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)\)/g))
    if (!newest[m[1]] || newer(m[2], newest[m[1]])) newest[m[1]] = m[2];
  return newest;
}

const t0 = Date.now();
for (const entry of ['native', 'binding.gyp', 'package.json', 'scripts/sources.js']) {
  fs.cpSync(path.join(root, entry), path.join(scratch, entry), { recursive: true });
}
fs.symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'));
const prebuildify = require.resolve('prebuildify/bin.js', { paths: [root] });
run(process.execPath, [prebuildify, '--napi', '--tag-libc', '--target', `node@${process.versions.node}`], {
  cwd: scratch,
  env: { ...process.env, DECOFLOW_PORTABLE: '1', JOBS: process.env.JOBS || '2' },
});
const tuple = `${process.platform}-${process.arch}`;
const dir = path.join(scratch, 'prebuilds', tuple);
const built = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
if (built.length !== 1) throw new Error(`prebuild: expected one addon in ${dir}, found ${built.join(', ')}`);
const file = path.join(dir, built[0]);
if (process.arch === 'x64') run(process.execPath, [path.join(__dirname, 'check-isa.js'), file]);
run('strip', ['--strip-unneeded', file]);

const outDir = path.join(root, 'prebuilds', tuple);
fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
const out = path.join(outDir, built[0]);
fs.copyFileSync(file, out);
fs.rmSync(scratch, { recursive: true, force: true });
const needs = newestVersions(out);
console.log(
  `prebuild: ${path.relative(root, out)}: ${(fs.statSync(out).size / 1024).toFixed(0)} KiB, needs ` +
    Object.entries(needs).map(([k, v]) => `${k}_${v}`).join(', ') +
    ` (built in ${((Date.now() - t0) / 1000).toFixed(0)} s)`,
);
const max = process.env.DECOFLOW_MAX_GLIBC;
if (max && needs.GLIBC && newer(needs.GLIBC, max)) {
  console.error(`prebuild: FAIL: needs GLIBC_${needs.GLIBC}, newer than DECOFLOW_MAX_GLIBC=${max}`);
  process.exit(1);
}
