import { maxTimerMs, type Logger } from "@shopmesh/chassis";
import type { SigningKeyStore } from "./signing-key-store.js";

/**
 * Rotates the signing key whenever the current one is `intervalMs` old
 * (KEY_ROTATION_INTERVAL), counting from when it was made, so that a restart
 * neither resets the clock nor rotates early. Returns a function that stops
 * the schedule.
 */
export function scheduleKeyRotation(store: SigningKeyStore, intervalMs: number, logger: Logger): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const current = store.published()[0]!;
    const dueInMs = Math.min(Math.max(0, current.createdAt + intervalMs - Date.now()), maxTimerMs);
    timer = setTimeout(() => {
      if (Date.now() >= current.createdAt + intervalMs && store.currentKeyId === current.keyId) {
        const rotated = store.rotate();
        logger.info(
          { keyId: rotated.keyId, previousKeyId: current.keyId },
          "rotated the token signing key on schedule",
        );
      }
      arm();
    }, dueInMs);
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
