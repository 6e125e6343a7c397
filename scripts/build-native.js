#!/usr/bin/env node
// Builds the native addon (and the CUDA backend where nvcc exists) from source with cmake-js, using
// the Node-API headers bundled in node-api-headers (nothing is downloaded). Falls back to node-gyp
// (CPU addon only) where CMake is missing.
//   DECOFLOW_CUDA=ON|OFF|AUTO   build the CUDA backend (default AUTO: when nvcc is found)
//   DECOFLOW_PORTABLE=1         build for generic x86-64 instead of this CPU
//   DECOFLOW_DEBUG=1            debug build
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');
const fs = require('fs');

const root = path.join(__dirname, '..');
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function run(cmd, args, env) {
  console.log(`decoflow: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`decoflow: native build failed (${cmd} exited with ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

const t0 = Date.now();
if (has('cmake')) {
  // nvcc is often outside PATH (/usr/local/cuda/bin); let CMake find it there.
  const env = {};
  if (!has('nvcc') && fs.existsSync('/usr/local/cuda/bin/nvcc')) env.CUDACXX = '/usr/local/cuda/bin/nvcc';
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const args = [cmakeJs, 'compile', '--out', 'build'];
  if (has('ninja')) args.push('-G', 'Ninja');
  if (process.env.DECOFLOW_DEBUG) args.push('--debug');
  args.push(`--CDDECOFLOW_CUDA=${process.env.DECOFLOW_CUDA || 'AUTO'}`);
  if (process.env.DECOFLOW_PORTABLE) args.push('--CDDECOFLOW_PORTABLE=ON');
  run(process.execPath, args, env);
} else {
  console.log('decoflow: cmake not found, building the CPU addon with node-gyp (no CUDA backend)');
  const gyp = path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  run(process.execPath, [fs.existsSync(gyp) ? gyp : require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild']);
}
console.log(`decoflow: native build done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
