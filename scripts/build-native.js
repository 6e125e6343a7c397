#!/usr/bin/env node
// Builds the native addon from source: with cmake-js where CMake is found (also the CUDA backend,
// where nvcc is found, and the C++ tests), else with node-gyp (the CPU addon). Both read the same
// source list (native/sources.json).
//
//   node scripts/build-native.js                  build (npm run build:native)
//   node scripts/build-native.js --if-no-prebuild the package's install script: nothing to do when the
//                                                 prebuilt addon of prebuilds/ loads here, unless a
//                                                 build from source is asked for
//
//   DECOFLOW_BUILD_FROM_SOURCE=1  (or npm's --build-from-source) build even where a prebuild fits
//   DECOFLOW_CUDA=ON|OFF|AUTO     build the CUDA backend (default AUTO: when nvcc is found)
//   DECOFLOW_PORTABLE=1           build for any x86-64 (as the prebuilt addon) instead of this CPU
//   DECOFLOW_DEBUG=1              debug build
//
// Building needs the build tools, which are not dependencies of the package: a C++17 compiler,
// node-addon-api, and either CMake with cmake-js or node-gyp with Python.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');
const fs = require('fs');

const root = path.join(__dirname, '..');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const resolves = (id) => {
  try {
    return require.resolve(id, { paths: [root] });
  } catch {
    return null;
  }
};

function fromSourceRequested() {
  const v = process.env.DECOFLOW_BUILD_FROM_SOURCE;
  return (v && v !== '0') || process.env.npm_config_build_from_source === 'true';
}

// The prebuilt addon for this platform, Node-API and libc, if one is shipped and loads.
function loadablePrebuild() {
  process.env.PREBUILDS_ONLY = '1'; // read by node-gyp-build when it is loaded: ignore build/
  const gypBuild = resolves('node-gyp-build');
  if (!gypBuild) return null;
  try {
    const file = require(gypBuild).path(root);
    require(file).buildInfo();
    return file;
  } catch (e) {
    console.log(`decoflow: no prebuilt addon loads here (${String(e.message).split('\n')[0]})`);
    return null;
  }
}

function run(cmd, args, env) {
  console.log(`decoflow: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`decoflow: native build failed (${cmd} exited with ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

function missing(what) {
  console.error(
    `decoflow: cannot build the native addon from source: ${what}.\n` +
      '  The package ships a prebuilt addon for linux-x64 (glibc); elsewhere, or with --build-from-source,\n' +
      '  install the build tools first: a C++17 compiler, then\n' +
      '    npm install --no-save node-addon-api node-api-headers cmake-js   (with CMake; or node-gyp and Python)\n' +
      '  and run `npm rebuild decoflow --build-from-source`.',
  );
  process.exit(1);
}

if (process.argv.includes('--if-no-prebuild') && !fromSourceRequested()) {
  const file = loadablePrebuild();
  if (file) {
    console.log(`decoflow: using the prebuilt addon ${path.relative(root, file)}`);
    process.exit(0);
  }
}

const t0 = Date.now();
if (!resolves('node-addon-api')) missing('node-addon-api is not installed');
const cmakeJs = resolves('cmake-js/bin/cmake-js');
if (has('cmake') && cmakeJs) {
  // nvcc is often outside PATH (/usr/local/cuda/bin); let CMake find it there.
  const env = {};
  if (!has('nvcc') && fs.existsSync('/usr/local/cuda/bin/nvcc')) env.CUDACXX = '/usr/local/cuda/bin/nvcc';
  const args = [cmakeJs, 'compile', '--out', 'build'];
  if (has('ninja')) args.push('-G', 'Ninja');
  if (process.env.DECOFLOW_DEBUG) args.push('--debug');
  args.push(`--CDDECOFLOW_CUDA=${process.env.DECOFLOW_CUDA || 'AUTO'}`);
  if (process.env.DECOFLOW_PORTABLE) args.push('--CDDECOFLOW_PORTABLE=ON');
  // an installed package has no C++ tests to build
  if (!fs.existsSync(path.join(root, 'test', 'native'))) args.push('--CDDECOFLOW_TESTS=OFF');
  run(process.execPath, args, env);
} else {
  console.log(`decoflow: ${has('cmake') ? 'cmake-js' : 'cmake'} not found, building the CPU addon with node-gyp (no CUDA backend)`);
  const bundled = path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  const gyp = fs.existsSync(bundled) ? bundled : resolves('node-gyp/bin/node-gyp.js');
  if (!gyp) missing('neither cmake-js with CMake nor node-gyp is available');
  run(process.execPath, [gyp, 'rebuild', ...(process.env.DECOFLOW_DEBUG ? ['--debug'] : [])]);
}
console.log(`decoflow: native build done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
