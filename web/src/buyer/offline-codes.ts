import { clear, createStore, delMany, get, keys, set } from "idb-keyval";
import { buyerApi } from "./session";
import type { QrSupply } from "./types";

// A ticket's codes for the next minutes, kept on the phone so that a buyer who loses the signal on the
// way to a gate still shows a valid, rotating code there. They come in one batch of consecutive windows
// (`POST /tickets/{code}/qr-tokens`) and are kept in IndexedDB by ticket code, so a reload keeps them.
// A code is chosen by the server's clock, not the phone's: a gate checks each window against a clock set
// by the server, and a phone's clock may be minutes off. The offset is measured when a batch arrives.

const store = createStore("passes-buyer-codes", "codes");

/** A new batch is fetched once the kept one ends sooner than this: going offline leaves minutes of codes. */
const REFILL_BELOW_MS = 5 * 60_000;

/** One window's code, its times on the server's clock (ms). */
interface KeptCode {
  token: string;
  notBefore: number;
  expiresAt: number;
}

/** What IndexedDB holds per ticket code. */
interface KeptBatch {
  /** The server's clock minus the phone's when the batch arrived (ms). */
  offsetMs: number;
  codes: KeptCode[];
}

/** A kept code to show, its window on the phone's clock (ms). */
export interface ShownCode {
  token: string;
  from: number;
  until: number;
}

/** One ticket's kept codes, as its QR screen uses them. */
export interface OfflineCodes {
  /** Reads what IndexedDB holds now (a read of the list may have dropped it). Never rejects. */
  load(): Promise<void>;
  /** The loaded code whose window holds `now` (phone clock), if any. */
  codeAt(now: number): ShownCode | undefined;
  /** When the last loaded window ends (phone clock); 0 when none are. */
  until(): number;
  /**
   * Loads, then fetches a new batch when the kept one ends within REFILL_BELOW_MS. Never rejects: without a
   * network the kept codes stay as they are.
   */
  refill(): Promise<void>;
}

/** Bumped on sign-out: a batch asked for before belongs to the buyer who left, and is not kept. */
let generation = 0;

/** `phoneAt`: the phone's clock when the server signed, taken as the middle of the round trip. */
function batchOf(supply: QrSupply, phoneAt: number): KeptBatch {
  const issuedAt = Date.parse(supply.issued_at);
  return {
    // The contract's minimal answer has no `issued_at`: then the phone's clock is all there is.
    offsetMs: Number.isFinite(issuedAt) ? issuedAt - phoneAt : 0,
    codes: supply.tokens.map((code) => ({
      token: code.token,
      notBefore: Date.parse(code.not_before),
      expiresAt: Date.parse(code.expires_at),
    })),
  };
}

export function offlineCodes(ticketCode: string): OfflineCodes {
  let batch: KeptBatch | undefined;
  let refilling: Promise<void> | undefined;

  async function load(): Promise<void> {
    // Without IndexedDB (some private modes) nothing is kept, which the screen says like running out.
    batch = await get<KeptBatch>(ticketCode, store).catch(() => undefined);
  }

  function until(): number {
    if (!batch || batch.codes.length === 0) return 0;
    return Math.max(...batch.codes.map((code) => code.expiresAt)) - batch.offsetMs;
  }

  async function fetchBatch(): Promise<void> {
    const asked = generation;
    const { data, elapsedMs } = await buyerApi<QrSupply>(
      "POST",
      `/tickets/${encodeURIComponent(ticketCode)}/qr-tokens`,
    );
    const fetched = batchOf(data, Date.now() - elapsedMs / 2);
    if (asked !== generation) return;
    await set(ticketCode, fetched, store);
    batch = fetched;
  }

  return {
    load,
    until,
    codeAt(now) {
      if (!batch) return undefined;
      const { offsetMs } = batch;
      const serverNow = now + offsetMs;
      const code = batch.codes.find((kept) => kept.notBefore <= serverNow && serverNow < kept.expiresAt);
      return code && { token: code.token, from: code.notBefore - offsetMs, until: code.expiresAt - offsetMs };
    },
    refill() {
      // One refill at a time: the screen asks after each fresh code; a slow batch must not be asked twice.
      refilling ??= load()
        .then(() => (until() - Date.now() < REFILL_BELOW_MS ? fetchBatch() : undefined))
        .catch(() => undefined)
        .finally(() => {
          refilling = undefined;
        });
      return refilling;
    },
  };
}

/**
 * Drops the codes of every ticket not in `activeCodes`: a used-up (or no longer listed) ticket's codes
 * would only be refused at a gate. Never rejects.
 */
export async function keepOfflineCodesFor(activeCodes: string[]): Promise<void> {
  const active = new Set(activeCodes);
  try {
    const stale = (await keys<string>(store)).filter((code) => !active.has(code));
    if (stale.length > 0) await delMany(stale, store);
  } catch {
    // Without IndexedDB nothing was kept.
  }
}

/** Signing out: the next person on this phone must not get the previous buyer's codes. Never rejects. */
export async function forgetOfflineCodes(): Promise<void> {
  generation += 1;
  await clear(store).catch(() => undefined);
}
