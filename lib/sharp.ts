// sharp (libvips) decodes and encodes the images, but the tensors, the model, training and sampling
// never need it: it is loaded on first use, so `require('decoflow')` works where sharp's native
// binary cannot load (a GPU box with no node_modules, an unsupported platform), and only the image
// functions then fail, with a coded error that says why.
import type SharpModule from 'sharp';
import { decoflowError } from './errors';

let cached: typeof SharpModule | undefined;

export function sharp(): typeof SharpModule {
  if (!cached) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require('sharp') as typeof SharpModule;
    } catch (e) {
      throw decoflowError(
        'ERR_DECOFLOW_NATIVE_MISSING',
        `images need the 'sharp' package, which could not be loaded: ${(e as Error).message.split('\n')[0]}`,
      );
    }
  }
  return cached;
}
