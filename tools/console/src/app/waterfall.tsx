import { useEffect, useState } from "preact/hooks";
import type { TraceView } from "../summary-types.js";

const shownRows = 12;

/** A trace as the services exported it: one bar per span, under its parent, on one time axis. */
export function Waterfall({
  traceId,
  pinned,
  onFollow,
}: {
  traceId: string | null;
  pinned: boolean;
  onFollow: () => void;
}) {
  const [trace, setTrace] = useState<TraceView | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  useEffect(() => {
    if (traceId === null) return;
    let stale = false;
    const load = async () => {
      const answer = await fetch(`api/traces/${traceId}`);
      if (stale) return;
      if (answer.ok) {
        setTrace((await answer.json()) as TraceView);
        setProblem(undefined);
      } else {
        setProblem(((await answer.json()) as { error: string }).error);
      }
    };
    void load().catch((error: Error) => setProblem(error.message));
    // Each service sends its spans a moment after they end, the caller's last: look again a few times.
    const again = [600, 1500, 3000].map((ms) => setTimeout(() => void load().catch(() => undefined), ms));
    return () => {
      stale = true;
      for (const timer of again) clearTimeout(timer);
    };
  }, [traceId]);
  const bars = trace?.traceId === traceId ? trace.bars : [];
  const endMs = Math.max(1, ...bars.map((b) => b.endMs));
  return (
    <div class="waterfall">
      <p class="trace-id">
        {traceId === null ? "No traced view yet: start the load or load your view." : `Trace ${traceId}`}{" "}
        {pinned && (
          <button type="button" onClick={onFollow}>
            Follow the newest view
          </button>
        )}
      </p>
      <ol class="bars" style={{ height: `${shownRows * 22}px` }} aria-label="Spans of the trace">
        {traceId !== null && bars.length === 0 && (
          <li class="note">{problem ?? "No spans of this trace have arrived (yet)."}</li>
        )}
        {bars.map((bar, index) => (
          <li key={index} class="bar-row">
            <span class="bar-label" style={{ paddingLeft: `${bar.depth * 10}px` }} title={bar.label}>
              {bar.label}
            </span>
            <span class="bar-track">
              <span
                class={`bar ${bar.kind}`}
                style={{
                  left: `${(bar.startMs / endMs) * 100}%`,
                  width: `${Math.max(0.5, ((bar.endMs - bar.startMs) / endMs) * 100)}%`,
                }}
              />
            </span>
            <span class="bar-note">{bar.note}</span>
          </li>
        ))}
      </ol>
      {trace !== undefined && trace.events.length > 0 && trace.traceId === traceId && (
        <p class="events">Events: {trace.events.map((e) => `${e.label} at ${e.atMs.toFixed(1)} ms`).join("; ")}</p>
      )}
    </div>
  );
}
