import cliProgress from "cli-progress";

/**
 * Progress of the experiment on standard error: a bar per step on a
 * terminal; elsewhere (CI, tests) one line when a step ends.
 */
export class Progress {
  readonly #interactive: boolean;
  #bar: cliProgress.SingleBar | undefined;
  #label = "";
  #started = 0;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#interactive = stream.isTTY === true;
  }

  /** Begins a step of `total` units. */
  begin(label: string, total: number): void {
    this.end();
    this.#label = label;
    this.#started = performance.now();
    if (!this.#interactive) return;
    this.#bar = new cliProgress.SingleBar(
      {
        format: `${label.padEnd(34)} [{bar}] {percentage}% | {value}/{total} | {detail}`,
        hideCursor: true,
        clearOnComplete: false,
        stream: process.stderr,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(Math.max(1, total), 0, { detail: "" });
  }

  /** Moves the bar to `done` units, with a short note. */
  update(done: number, detail = ""): void {
    this.#bar?.update(done, { detail });
  }

  /** Lets the bar grow when a step turns out bigger. */
  setTotal(total: number): void {
    this.#bar?.setTotal(Math.max(1, total));
  }

  /** Ends the current step with a one-line result. */
  end(result?: string): void {
    const seconds = ((performance.now() - this.#started) / 1000).toFixed(1);
    if (this.#bar) {
      this.#bar.stop();
      this.#bar = undefined;
    }
    if (result !== undefined)
      process.stderr.write(`${this.#interactive ? "  " : ""}✓ ${this.#label} (${seconds}s): ${result}\n`);
  }
}
