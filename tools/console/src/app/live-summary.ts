import { useEffect, useState } from "preact/hooks";
import type { MeshSummary } from "../summary-types.js";

export interface Live {
  summary: MeshSummary | undefined;
  /** False while the console's server cannot be reached (EventSource retries by itself). */
  connected: boolean;
}

/** The mesh's state as the console's server sends it, a few times a second, while the page is open. */
export function useLiveSummary(): Live {
  const [live, setLive] = useState<Live>({ summary: undefined, connected: true });
  useEffect(() => {
    const events = new EventSource("api/events");
    events.onmessage = (message) => setLive({ summary: JSON.parse(message.data) as MeshSummary, connected: true });
    events.onerror = () => setLive((previous) => ({ ...previous, connected: false }));
    events.onopen = () => setLive((previous) => ({ ...previous, connected: true }));
    return () => events.close();
  }, []);
  return live;
}

export const formatMs = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? "–" : ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
export const formatRate = (rate: number | null | undefined) =>
  rate === null || rate === undefined ? "–" : `${rate < 10 ? rate.toFixed(1) : Math.round(rate)}/s`;
export const formatShare = (share: number | null | undefined) =>
  share === null || share === undefined ? "–" : `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)} %`;
