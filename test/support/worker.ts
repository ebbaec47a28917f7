import { exports } from "cloudflare:workers";

/**
 * The Worker's default export through its loopback binding. With the test-only compatibility flag
 * `service_binding_extra_handlers` it also exposes scheduled() and queue(), which the binding's type
 * does not declare.
 */
interface ExtraHandlers {
  scheduled(options: { cron?: string; scheduledTime?: Date | number }): Promise<{ outcome: string }>;
}

export const worker = exports.default as unknown as typeof exports.default & ExtraHandlers;

export function runCron(cron: string, scheduledTime: Date | number) {
  return worker.scheduled({ cron, scheduledTime });
}
