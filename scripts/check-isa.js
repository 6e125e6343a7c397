#!/usr/bin/env node
// Checks that a portable addon runs on any x86-64: every function that uses instructions beyond
// the x86-64 baseline (SSE2) must belong to a CPU level's own copy of the kernels (namespace
// df::cpu_avx2 or df::cpu_avx512, native/ops/cpu_level.h), which run only where CPUID allows them;
// and the avx2 copy must not use AVX-512. A function outside them with such instructions (say an
// inline function of a shared header whose AVX2 copy the linker kept) would crash an older CPU.
//   node scripts/check-isa.js path/to/decoflow.node
'use strict';
const { execFileSync } = require('child_process');

const file = process.argv[2];
if (!file) {
  console.error('usage: node scripts/check-isa.js <addon.node>');
  process.exit(2);
}

// Mnemonics beyond SSE2 without a 'v' prefix (SSE3, SSSE3, SSE4.1/4.2, POPCNT, LZCNT, BMI1/2, MOVBE).
const beyondSse2 = new Set(
  (
    'addsubps addsubpd haddps haddpd hsubps hsubpd lddqu movddup movshdup movsldup ' +
    'pabsb pabsw pabsd palignr phaddw phaddd phaddsw phsubw phsubd phsubsw pmaddubsw pmulhrsw pshufb psignb psignw psignd ' +
    'blendps blendpd blendvps blendvpd dpps dppd extractps insertps movntdqa mpsadbw packusdw pblendvb pblendw ' +
    'pcmpeqq pextrb pextrd pextrq phminposuw pinsrb pinsrd pinsrq pmaxsb pmaxsd pmaxud pmaxuw pminsb pminsd pminud pminuw ' +
    'pmovsxbw pmovsxbd pmovsxbq pmovsxwd pmovsxwq pmovsxdq pmovzxbw pmovzxbd pmovzxbq pmovzxwd pmovzxwq pmovzxdq ' +
    'pmuldq pmulld ptest roundps roundpd roundss roundsd pcmpgtq pcmpestri pcmpestrm pcmpistri pcmpistrm crc32 ' +
    'popcnt lzcnt tzcnt andn bextr blsi blsmsk blsr bzhi pdep pext rorx sarx shlx shrx mulx movbe'
  ).split(' '),
);

function needs(mnemonic, operands) {
  const m = mnemonic.replace(/^(lock|rep|repz|repnz|notrack|bnd)\s+/, '');
  const avx512 = /%zmm|%k[0-7]\b|\{%k/.test(operands);
  const beyond = avx512 || /^v/.test(m) || /%ymm/.test(operands) || beyondSse2.has(m.replace(/[lqwb]$/, '')) || beyondSse2.has(m);
  return { beyond, avx512 };
}

const text = execFileSync('objdump', ['-d', '-C', '--no-show-raw-insn', '-w', file], {
  encoding: 'utf8',
  maxBuffer: 1 << 30,
});
const functions = new Map(); // name -> { beyond, avx512 }
let current = null;
for (const line of text.split('\n')) {
  const head = /^[0-9a-f]+ <(.*)>:$/.exec(line);
  if (head) {
    current = { name: head[1], beyond: false, avx512: false };
    functions.set(`${head[1]}@${line.slice(0, 16)}`, current);
    continue;
  }
  const ins = /^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$/.exec(line);
  if (!ins || !current) continue;
  const n = needs(ins[1], ins[2]);
  current.beyond ||= n.beyond;
  current.avx512 ||= n.avx512;
}

const bad = [];
const counts = { baseline: 0, avx2: 0, avx512: 0 };
for (const f of functions.values()) {
  const level = /\bcpu_avx512::/.test(f.name) ? 'avx512' : /\bcpu_avx2::/.test(f.name) ? 'avx2' : 'baseline';
  counts[level]++;
  if (level === 'baseline' && f.beyond) bad.push(`beyond x86-64 outside a CPU level: ${f.name}`);
  if (level === 'avx2' && f.avx512) bad.push(`AVX-512 in the avx2 level: ${f.name}`);
}
console.log(
  `check-isa: ${file}: ${functions.size} functions (${counts.baseline} baseline, ${counts.avx2} avx2, ${counts.avx512} avx512)`,
);
if (bad.length) {
  for (const b of bad.slice(0, 40)) console.error(`  ${b}`);
  console.error(`check-isa: FAIL: ${bad.length} functions use instructions their CPU level does not guarantee`);
  process.exit(1);
}
if (counts.avx2 === 0 || counts.avx512 === 0) {
  console.error('check-isa: FAIL: no avx2 or avx512 kernels found (is this a dispatching build?)');
  process.exit(1);
}
console.log('check-isa: ok: code beyond SSE2 only in the avx2 and avx512 kernels (and no AVX-512 in avx2)');
