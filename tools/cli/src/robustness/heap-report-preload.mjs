// Preloaded into a service process by `shopmesh soak` and `shopmesh overload`
// (NODE_OPTIONS="--import <this file>") so that the heap of a process can be
// read from outside, as its RSS is from /proc: once a second it writes
// process.memoryUsage() as JSON to HEAP_REPORT_FILE, with the longest
// garbage-collection pause so far and how many paused the process over
// 10 ms. Plain JavaScript: it loads before tsx does. The timer does not keep
// the process alive.
import { renameSync, writeFileSync } from "node:fs";
import { PerformanceObserver } from "node:perf_hooks";

const file = process.env.HEAP_REPORT_FILE;
if (file) {
  let gcMaxPauseMs = 0;
  let gcPausesOver10Ms = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcMaxPauseMs = Math.max(gcMaxPauseMs, entry.duration);
      if (entry.duration > 10) gcPausesOver10Ms++;
    }
  }).observe({ entryTypes: ["gc"] });
  const write = () => {
    try {
      // Written aside and renamed, so that a reader never sees half a line.
      writeFileSync(
        `${file}.tmp`,
        JSON.stringify({ at: Date.now(), ...process.memoryUsage(), gcMaxPauseMs, gcPausesOver10Ms }),
      );
      renameSync(`${file}.tmp`, file);
    } catch {
      // A full disk or a removed directory ends the reports, not the service.
    }
  };
  write();
  setInterval(write, Number(process.env.HEAP_REPORT_INTERVAL_MS ?? "1000")).unref();
}
