import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";

/**
 * One object per wallet: serializes every balance-changing operation of one user. Declared from the first
 * migration so the binding exists in every deployment; the wallet slice gives it its methods.
 */
export class WalletObject extends DurableObject<Env> {}
