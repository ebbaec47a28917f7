import { z } from "zod";

/**
 * Every message on the EVENTS queue. Delivery is at-least-once and unordered: each kind carries the
 * deterministic id its consumer writes under, so a redelivery is a no-op.
 */
export const EventMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("order.paid"), order_id: z.string(), user_id: z.string(), paid_at: z.string() }),
]);

export type EventMessage = z.infer<typeof EventMessageSchema>;
