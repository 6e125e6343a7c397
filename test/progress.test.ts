import { ProgressBar } from '../lib/cli/progress';

describe('the progress bar ETA', () => {
  // a stream that is not a terminal and keeps what is written
  const sink = () => ({ isTTY: false, lines: [] as string[], write(s: string) { this.lines.push(s); return true; } });

  test('without a time limit: the steps left at the current rate', () => {
    const bar = new ProgressBar(20000, 0, sink() as unknown as NodeJS.WriteStream);
    expect(bar.eta(100, 10)).toBeCloseTo(1990, 6); // 10 it/s, 19900 steps left
  });

  test('with a time limit that comes first: the time left (npm run demo: 240 s, 20000 steps)', () => {
    const bar = new ProgressBar(20000, 0, sink() as unknown as NodeJS.WriteStream, 240);
    expect(bar.eta(100, 10)).toBeCloseTo(230, 6);
    expect(bar.eta(100, 300)).toBe(0); // past the limit: never negative
  });

  test('with a time limit that comes last: the steps decide', () => {
    const bar = new ProgressBar(200, 50, sink() as unknown as NodeJS.WriteStream, 3600);
    expect(bar.eta(100, 10)).toBeCloseTo(20, 6); // a resumed run: 50 steps in 10 s, 100 left
  });
});
