#!/usr/bin/env node
// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small valid inputs of each
// format and a few near misses, so the fuzzer starts from the shapes real files have. Run it again
// after a format changes: `node fuzz/make-seeds.js`.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, 'corpus');
const put = (target, name, bytes) => {
  fs.mkdirSync(path.join(root, target), { recursive: true });
  fs.writeFileSync(path.join(root, target, name), bytes);
};

const config = { stages: 2, channels: 3, height: 16, width: 16, patchSizes: [2, 4], hidden: 8, depth: 1, heads: 2, mlpRatio: 4, numClasses: 8, stageEmbedding: true, posEmbedding: true, freqDim: 256, timeScale: 1000 };
const optimizer = { lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, warmupSteps: 100, gradClip: 1, emaDecay: 0.999 };

function safetensors(tensors, metadata) {
  const header = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const datas = [];
  for (const [name, dtype, shape, values] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    const buf = Buffer.alloc(4 * n);
    for (let i = 0; i < n; i++) dtype === 'I32' ? buf.writeInt32LE(values ? values[i] : i, 4 * i) : buf.writeFloatLE(values ? values[i] : i / 7, 4 * i);
    header[name] = { dtype, shape, data_offsets: [offset, offset + buf.length] };
    offset += buf.length;
    datas.push(buf);
  }
  let h = JSON.stringify(header);
  while ((8 + h.length) % 8) h += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(h)));
  return Buffer.concat([len, Buffer.from(h), ...datas]);
}

// safetensors
const meta = { format: 'decoflow-dit/1', config: JSON.stringify(config), optimizer: JSON.stringify(optimizer), step: '12' };
put('safetensors', 'checkpoint-like', safetensors([['x_embedders.0.proj.weight', 'F32', [8, 12]], ['ema.x_embedders.0.proj.weight', 'F32', [8, 12]], ['adam.m.x_embedders.0.proj.bias', 'F32', [8]]], meta));
put('safetensors', 'images', safetensors([['images', 'F32', [2, 1, 4, 4]], ['labels', 'I32', [2], [3, 7]]]));
put('safetensors', 'scalar', safetensors([['s', 'F32', []]], { note: 'a scalar, unicode \u00e9\u4e2d \\ "quoted"' }));
put('safetensors', 'empty', safetensors([], {}));
put('safetensors', 'overlap', Buffer.from(safetensors([['a', 'F32', [2]], ['b', 'F32', [2]]]).toString('latin1').replace('"data_offsets":[8,16]', '"data_offsets":[0, 8]'), 'latin1'));

// JSON (safetensors headers, metadata, configs)
const st = safetensors([['a', 'F32', [2, 2]]], meta);
put('json', 'header', st.subarray(8, 8 + Number(st.readBigUInt64LE(0))));
put('json', 'config', JSON.stringify(config));
put('json', 'optimizer', JSON.stringify(optimizer));
put('json', 'values', '[null, true, false, 0, -0.5e-3, 1E+2, 12345678901234567890, "\\u00e9\\ud83d\\ude00\\n\\t\\"", {}, [], {"a": {"b": [1, [2, [3]]]}}]');
put('json', 'escapes', '{"\\u0000\\u001f": "\\/\\\\\\b\\f\\r", "k": "\u00e9"}');

// model configs
put('config', 'tiny', JSON.stringify(config));
put('config', 'minimal', JSON.stringify({ stages: 1, channels: 1, height: 8, width: 8, patchSizes: [2], hidden: 16, depth: 1, heads: 1 }));
put('config', 'three-stages', JSON.stringify({ ...config, stages: 3, height: 32, width: 32, patchSizes: [1, 2, 4], numClasses: 0, stageEmbedding: false }));

// IDX: the first byte picks the rank (rank - 1), then the file
const idx = (rank, dims, fill) => {
  const b = Buffer.alloc(4 + 4 * rank + dims.reduce((a, x) => a * x, 1));
  b[2] = 8;
  b[3] = rank;
  dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
  for (let i = 4 + 4 * rank; i < b.length; i++) b[i] = fill(i);
  return b;
};
put('idx', 'images', Buffer.concat([Buffer.from([2]), idx(3, [3, 4, 4], (i) => (i * 37) & 255)]));
put('idx', 'labels', Buffer.concat([Buffer.from([0]), idx(1, [10], (i) => i % 10)]));
put('idx', 'truncated', Buffer.concat([Buffer.from([2]), idx(3, [3, 4, 4], () => 1).subarray(0, 30)]));

// .npy
const npy = (descr, shape, body, major = 1) => {
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pre = major === 1 ? 10 : 12;
  while ((pre + h.length + 1) % 64) h += ' ';
  h += '\n';
  const b = Buffer.alloc(pre);
  b.write('\x93NUMPY', 0, 'latin1');
  b[6] = major;
  if (major === 1) b.writeUInt16LE(h.length, 8);
  else b.writeUInt32LE(h.length, 8);
  return Buffer.concat([b, Buffer.from(h, 'latin1'), body]);
};
put('npy', 'u8-nhw', npy('|u1', [2, 4, 4], Buffer.alloc(32, 200)));
put('npy', 'u8-nhwc', npy('|u1', [1, 2, 2, 3], Buffer.from([...Array(12).keys()])));
put('npy', 'f4-nchw', npy('<f4', [1, 1, 2, 2], Buffer.from(new Float32Array([-1, 0, 0.5, 1]).buffer)));
put('npy', 'f8-v2', npy('<f8', [1, 1, 1, 2], Buffer.from(new Float64Array([0.25, -0.25]).buffer), 2));
put('npy', 'one-dim', npy('<f4', [3], Buffer.alloc(12)));

// image set: width, height, tile, padding, offset, limit as 4-byte numbers (see fuzz_image_set.cpp),
// then side, channels, size and the pixels
const ints = (...xs) => {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => b.writeUInt32BE(x < 0 ? (0x80000000 | -x) >>> 0 : x, 4 * i));
  return b;
};
put('image_set', 'grid-found-padding', Buffer.concat([ints(16, 11, 4, -1, 1, 3), Buffer.from([3, 1, 1]), Buffer.alloc(16, 9)]));
put('image_set', 'grid-given-padding', Buffer.concat([ints(70, 36, 16, 2, 0, -1), Buffer.from([1, 3, 1]), Buffer.alloc(12, 250)]));
put('image_set', 'box-average', Buffer.concat([ints(8, 8, 8, 0, 0, 1), Buffer.from([1, 1, 0]), Buffer.from([0, 255, 255, 255])]));
console.log(`seeds written under ${root}`);
