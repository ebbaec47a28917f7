import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";

/**
 * One object per ticket: the source of truth for its remaining uses and spent QR jtis. Declared from the
 * first migration so the binding exists in every deployment; the redemption slice gives it its methods.
 */
export class TicketObject extends DurableObject<Env> {}
