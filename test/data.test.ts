import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { BatchLoader, fashionMnist, FASHION_MNIST_DIR, imageFolder, loadDataset, readImage, saveGrid, saveImages, shapesDataset, Tensor } from '../lib';
import { caughtAsync } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'decoflow-data-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('shapes (the embedded dataset)', () => {
  test('deterministic per seed and index, in [-1, 1], every class present', async () => {
    const ds = shapesDataset({ seed: 3 });
    expect(ds.channels).toBe(3);
    expect(ds.imageSize).toBe(32);
    expect(ds.numClasses).toBe(8);
    const idx = Array.from({ length: 200 }, (_, i) => i);
    const a = await ds.batch(idx);
    const b = await ds.batch([5, 0]);
    expect(a.images.shape).toEqual([200, 3, 32, 32]);
    const ai = a.images.dataSync();
    const bi = b.images.dataSync();
    const per = 3 * 32 * 32;
    expect(Array.from(bi.subarray(0, per))).toEqual(Array.from(ai.subarray(5 * per, 6 * per)));
    expect(Array.from(bi.subarray(per))).toEqual(Array.from(ai.subarray(0, per)));
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of ai) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    expect(hi - lo).toBeGreaterThan(1); // not a constant image
    const labels = Array.from(a.labels.dataSync());
    for (let c = 0; c < 8; c++) expect(labels.filter((l) => l === c).length).toBeGreaterThan(5);
    const other = await shapesDataset({ seed: 4 }).batch([0]);
    expect(Array.from(other.images.dataSync().subarray(0, 50))).not.toEqual(Array.from(ai.subarray(0, 50)));
  });

  test('the image has multi-scale content: fine detail is not negligible', async () => {
    const { images } = await shapesDataset({ seed: 1 }).batch(Array.from({ length: 32 }, (_, i) => i));
    const x = images.dataSync();
    // energy of the difference between the image and its 2x2 block mean (the finest Laplacian band)
    let fine = 0;
    let total = 0;
    for (let p = 0; p < 32 * 3; p++)
      for (let y = 0; y < 32; y += 2)
        for (let xx = 0; xx < 32; xx += 2) {
          const o = p * 1024 + y * 32 + xx;
          const m = (x[o] + x[o + 1] + x[o + 32] + x[o + 33]) / 4;
          for (const d of [0, 1, 32, 33]) {
            fine += (x[o + d] - m) ** 2;
            total += x[o + d] ** 2;
          }
        }
    expect(fine / total).toBeGreaterThan(0.002);
  });

  test('bad indices', async () => {
    const ds = shapesDataset({ size: 10 });
    expect((await caughtAsync(() => ds.batch([10]))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
    expect((await caughtAsync(() => ds.batch([]))).code).toBe('ERR_DECOFLOW_ARG_TYPE');
    expect((await caughtAsync(() => ds.batch([1.5]))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
  });
});

describe('Fashion-MNIST', () => {
  const have = fs.existsSync(path.join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
  (have ? test : test.skip)('loads, pads 28 -> 32 with the background, labels 0..9', async () => {
    const ds = await fashionMnist({ limit: 100 });
    expect(ds.size).toBe(100);
    expect(ds.channels).toBe(1);
    expect(ds.numClasses).toBe(10);
    const { images, labels } = await ds.batch([0, 1, 2]);
    expect(images.shape).toEqual([3, 1, 32, 32]);
    const x = images.dataSync();
    for (let i = 0; i < 32; i++) expect(x[i]).toBe(-1); // the padded top row
    expect(Math.max(...Array.from(x))).toBeGreaterThan(0.5);
    // the first training images of Fashion-MNIST are an ankle boot and two T-shirts
    expect(Array.from(labels.dataSync())).toEqual([9, 0, 0]);
    ds.dispose();
  });

  test('corrupt and missing files are coded errors', async () => {
    const dir = path.join(tmp, 'fm');
    fs.mkdirSync(dir);
    const header = Buffer.alloc(16);
    header.writeUInt32BE(0x803, 0);
    header.writeUInt32BE(5, 4);
    header.writeUInt32BE(28, 8);
    header.writeUInt32BE(28, 12);
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), zlib.gzipSync(Buffer.concat([header, Buffer.alloc(100)]))); // truncated
    const lab = Buffer.alloc(13);
    lab.writeUInt32BE(0x801, 0);
    lab.writeUInt32BE(5, 4);
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), lab);
    const e = await caughtAsync(() => fashionMnist({ dir }));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
    expect(e.message).toMatch(/header says/);
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), Buffer.from('not gzip'));
    expect((await caughtAsync(() => fashionMnist({ dir }))).code).toBe('ERR_DECOFLOW_FORMAT');
    expect((await caughtAsync(() => fashionMnist({ dir: path.join(tmp, 'nowhere') }))).code).toBe('ERR_DECOFLOW_IO');
    expect((await caughtAsync(() => loadDataset('imagenet-please'))).code).toBe('ERR_DECOFLOW_ARG_VALUE');
  });
});

describe('image folders and PNG output', () => {
  test('a folder with class subfolders; images resized; a grid written atomically', async () => {
    const dir = path.join(tmp, 'folder');
    for (const [cls, colour] of [['blue', { r: 0, g: 0, b: 255 }], ['red', { r: 255, g: 0, b: 0 }]] as const) {
      fs.mkdirSync(path.join(dir, cls), { recursive: true });
      for (let i = 0; i < 3; i++)
        await sharp({ create: { width: 40 + i * 10, height: 30, channels: 3, background: colour } })
          .png()
          .toFile(path.join(dir, cls, `${i}.png`));
    }
    fs.writeFileSync(path.join(dir, 'red', 'notes.txt'), 'not an image');
    const ds = await imageFolder(dir, { imageSize: 16 });
    expect(ds.size).toBe(6);
    expect(ds.numClasses).toBe(2);
    expect(ds.classNames).toEqual(['blue', 'red']);
    const { images, labels } = await ds.batch([0, 5]);
    expect(images.shape).toEqual([2, 3, 16, 16]);
    expect(Array.from(labels.dataSync())).toEqual([0, 1]);
    const x = images.dataSync();
    expect(x[2 * 256]).toBeCloseTo(1, 5); // blue channel of the blue image
    expect(x[0]).toBeCloseTo(-1, 5); // red channel of the blue image
    expect(x[3 * 256]).toBeCloseTo(1, 5); // red channel of the red image

    const out = path.join(tmp, 'grid', 'g.png');
    await saveGrid(out, images, { scale: 2 });
    const meta = await sharp(out).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBe((2 * 18 + 2) * 2);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['g.png']); // no temp file left
    const files = await saveImages(path.join(tmp, 'each'), images, { prefix: 'x' });
    expect(files.map((f) => path.basename(f))).toEqual(['x-00000.png', 'x-00001.png']);
    const back = await readImage(files[1], 16, 3);
    expect(back[0]).toBeCloseTo(1, 5);
  });

  test('a corrupt image is a FORMAT error naming the file', async () => {
    const dir = path.join(tmp, 'bad');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'broken.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    const e = await caughtAsync(() => imageFolder(dir));
    expect(e.code).toBe('ERR_DECOFLOW_FORMAT');
    expect(e.message).toMatch(/broken\.png/);
    expect((await caughtAsync(() => imageFolder(path.join(tmp, 'missing')))).code).toBe('ERR_DECOFLOW_IO');
  });
});

test('BatchLoader: seeded shuffles that cover each epoch, with prefetch', async () => {
  const ds = shapesDataset({ size: 10 });
  const seen: number[] = [];
  const fake = { ...ds, batch: async (idx: readonly number[]) => (seen.push(...idx), ds.batch(idx)) };
  const loader = new BatchLoader(fake, 5, 7);
  const first = await loader.next();
  expect(first.images.shape).toEqual([5, 3, 32, 32]);
  await loader.next();
  // two batches consumed, a third prefetched: the first two cover epoch 1 exactly
  expect(new Set(seen.slice(0, 10)).size).toBe(10);
  const again = new BatchLoader(fake, 5, 7);
  const before = seen.length;
  await again.next();
  expect(seen.slice(before, before + 5)).toEqual(seen.slice(0, 5));
  expect(() => new BatchLoader(ds, 0)).toThrow(/batchSize/);
  Tensor.zeros([1]).dispose();
});
