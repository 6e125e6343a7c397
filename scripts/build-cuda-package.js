#!/usr/bin/env node
// Builds the optional package @decoflow/linux-x64-cuda (packages/linux-x64-cuda): the CUDA backend
// library for sm_80 and sm_90 with the CUDA runtime linked statically, portable like the prebuilt
// addon (static libstdc++, the glibc floor of native/core/glibc_compat.cpp), cuBLASLt linked
// dynamically (RUNPATH $ORIGIN and /usr/local/cuda/lib64; see the package's README). Then it shows
// how far the library loads on this machine through the prebuilt addon (dlopen, the C ABI version
// check, and backends()' reason without a driver or device) and packs the package.
//   CUBLAS_ROOT=<dir with include/cublasLt.h and lib/libcublasLt.so.13> node scripts/build-cuda-package.js
// (the nvidia-cublas wheel's nvidia/cu13 folder serves; without CUBLAS_ROOT CMake also looks for the
// wheel through python3).
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const build = path.join(root, 'build-cuda-package');
const pkg = path.join(root, 'packages', 'linux-x64-cuda');

function run(cmd, args, env = {}) {
  console.log(`cuda-package: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`cuda-package: ${cmd} failed (${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

const nvcc = ['/usr/local/cuda/bin/nvcc'].find((p) => fs.existsSync(p)) || 'nvcc';
const t0 = Date.now();
run('cmake', ['-S', root, '-B', build, '-G', 'Ninja', '-DCMAKE_BUILD_TYPE=Release', '-DDECOFLOW_CUDA=ON',
  '-DDECOFLOW_PORTABLE=ON', '-DDECOFLOW_TESTS=OFF', `-DCMAKE_CUDA_COMPILER=${nvcc}`]);
run('cmake', ['--build', build, '--target', 'decoflow_cuda', '-j', process.env.JOBS || '2']);
const built = path.join(build, 'Release', 'libdecoflow_cuda.so');
const lib = path.join(pkg, 'lib', 'libdecoflow_cuda.so');
fs.mkdirSync(path.dirname(lib), { recursive: true });
fs.copyFileSync(built, lib);
run('strip', ['--strip-unneeded', lib]);

const dyn = execFileSync('objdump', ['-p', lib], { encoding: 'utf8' });
const needed = [...dyn.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]);
const runpath = (/(?:RUNPATH|RPATH)\s+(\S+)/.exec(dyn) || [])[1] || '-';
const versions = execFileSync('objdump', ['-T', lib], { encoding: 'utf8', maxBuffer: 1 << 28 });
const glibc = [...versions.matchAll(/\(GLIBC_([0-9.]+)\)/g)].map((m) => m[1]);
const floor = glibc.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).pop();
console.log(`cuda-package: ${path.relative(root, lib)}: ${(fs.statSync(lib).size / 1048576).toFixed(1)} MiB, ` +
  `needs ${needed.join(' ')}, GLIBC_${floor}; RUNPATH ${runpath} (built in ${((Date.now() - t0) / 1000).toFixed(0)} s)`);

// How far it loads here: the prebuilt addon (else the source build) with this library.
const addon = ['prebuilds/linux-x64'].map((d) => path.join(root, d)).filter(fs.existsSync)
  .flatMap((d) => fs.readdirSync(d).filter((f) => f.endsWith('.node')).map((f) => path.join(d, f)))[0] ||
  path.join(root, 'build', 'Release', 'decoflow.node');
const env = { ...process.env, DECOFLOW_NATIVE_PATH: addon, DECOFLOW_CUDA_LIBRARY: lib };
if (process.env.CUBLAS_ROOT) env.DECOFLOW_CUBLASLT_DIR = path.join(process.env.CUBLAS_ROOT, 'lib');
const probe = spawnSync(process.execPath, ['-e', `
  const d = require(${JSON.stringify(path.join(root, 'dist', 'index.cjs'))});
  const c = d.backends().find((b) => b.name === 'cuda');
  console.log('cuda-package: through ' + ${JSON.stringify(path.relative(root, addon))} + ': cuda ' +
    (c.available ? 'available: ' + c.detail : 'unavailable: ' + c.reason));`], { env, encoding: 'utf8' });
process.stdout.write(probe.stdout + probe.stderr);

const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', path.join(root, 'packages')], {
  cwd: pkg,
  encoding: 'utf8',
}).trim().split('\n').pop();
const tgz = path.join(root, 'packages', packed);
console.log(`cuda-package: ${path.relative(root, tgz)}: ${(fs.statSync(tgz).size / 1048576).toFixed(1)} MiB packed`);
