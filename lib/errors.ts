// Errors raised by the TypeScript layer carry a `code` like the native ones, so callers can match
// on `code` whichever layer noticed the problem.
export type ErrorCode =
  | 'ERR_DECOFLOW_ARG_TYPE'
  | 'ERR_DECOFLOW_ARG_VALUE'
  | 'ERR_DECOFLOW_SHAPE'
  | 'ERR_DECOFLOW_DTYPE'
  | 'ERR_DECOFLOW_DEVICE'
  | 'ERR_DECOFLOW_DISPOSED'
  | 'ERR_DECOFLOW_OUT_OF_MEMORY'
  | 'ERR_DECOFLOW_BACKEND'
  | 'ERR_DECOFLOW_IO'
  | 'ERR_DECOFLOW_FORMAT'
  | 'ERR_DECOFLOW_CONFIG'
  | 'ERR_DECOFLOW_NON_FINITE'
  | 'ERR_DECOFLOW_BUSY'
  | 'ERR_DECOFLOW_NATIVE_MISSING'
  | 'ABORT_ERR';

export interface DecoflowError extends Error {
  code: ErrorCode;
}

export function decoflowError(code: ErrorCode, message: string): DecoflowError {
  const e = (code === 'ERR_DECOFLOW_ARG_TYPE' ? new TypeError(message) : new Error(message)) as DecoflowError;
  e.code = code;
  if (code === 'ABORT_ERR') e.name = 'AbortError';
  return e;
}
