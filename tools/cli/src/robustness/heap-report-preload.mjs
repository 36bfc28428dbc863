// Preloaded into a service process by `shopmesh soak` and `shopmesh overload`
// (NODE_OPTIONS="--import <this file>") so that the heap of a process can be
// read from outside, as its RSS is from /proc: once a second it writes
// process.memoryUsage() as JSON to HEAP_REPORT_FILE. Plain JavaScript: it
// loads before tsx does. The timer does not keep the process alive.
import { renameSync, writeFileSync } from "node:fs";

const file = process.env.HEAP_REPORT_FILE;
if (file) {
  const write = () => {
    try {
      // Written aside and renamed, so that a reader never sees half a line.
      writeFileSync(`${file}.tmp`, JSON.stringify({ at: Date.now(), ...process.memoryUsage() }));
      renameSync(`${file}.tmp`, file);
    } catch {
      // A full disk or a removed directory ends the reports, not the service.
    }
  };
  write();
  setInterval(write, Number(process.env.HEAP_REPORT_INTERVAL_MS ?? "1000")).unref();
}
