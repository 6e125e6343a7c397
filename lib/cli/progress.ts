// A one-line progress bar on a terminal (rewritten in place), or a line every `every` updates
// when the output is a file or a pipe. With a time limit, the ETA is the sooner of the two ends.
export class ProgressBar {
  #start = Date.now();
  #lastPrint = 0;

  constructor(
    readonly total: number,
    /** Where a resumed run starts (the rate counts only this run's work). */
    readonly start = 0,
    readonly stream: NodeJS.WriteStream = process.stderr,
    /** The run also stops after this many seconds (from the bar's creation). */
    readonly timeLimit = Infinity,
  ) {}

  /** Seconds left: to the last step at the current rate, or to the time limit if that is sooner. */
  eta(done: number, elapsed: number): number {
    const rate = (done - this.start) / Math.max(elapsed, 1e-9);
    const bySteps = rate > 0 ? (this.total - done) / rate : Infinity;
    return Math.max(0, Math.min(bySteps, this.timeLimit - elapsed));
  }

  update(done: number, fields: Record<string, string>): void {
    const now = Date.now();
    const final = done >= this.total;
    const tty = this.stream.isTTY;
    if (!final && now - this.#lastPrint < (tty ? 100 : 10000)) return;
    this.#lastPrint = now;
    const elapsed = (now - this.#start) / 1000;
    const rate = (done - this.start) / Math.max(elapsed, 1e-9);
    const eta = this.eta(done, elapsed);
    const width = 24;
    const filled = Math.round((width * Math.min(done, this.total)) / this.total);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('  ');
    const line = `${bar} ${done}/${this.total}  ${extra}  ${rate.toFixed(2)} it/s  ETA ${formatSeconds(eta)}`;
    this.stream.write(tty ? `\r${line}\x1b[K${final ? '\n' : ''}` : `${line}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
