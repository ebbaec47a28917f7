import { NetworkError } from "../lib/api";

/**
 * `request`, or a NetworkError once `ms` have passed without its answer: a gate on a connection that
 * neither answers nor fails must not wait for ever. The request itself runs on; what it does is safe to
 * do again (an Idempotency-Key, a scan id, a read).
 */
export async function answerWithin<T>(request: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NetworkError("no answer in time")), ms);
  });
  try {
    return await Promise.race([request, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
