import { env } from "cloudflare:workers";
import { describe, it } from "vitest";
import { walletRef } from "../../src/auth/wallet-ref";
import { type Config, loadConfig } from "../../src/env";

// A till's opaque wallet reference is keyed by WALLET_REF_SECRET alone, so each secret rotates on its own.

const config = loadConfig(env);
const rotated = (changes: Partial<Config>): Config => ({ ...config, ...changes });
const freshSecret = (label: string) => `${label}-${crypto.randomUUID()}-${crypto.randomUUID()}`;

describe("wallet_ref", () => {
  it("stays the same when the operator token secret rotates", async ({ expect }) => {
    const before = await walletRef(config, "evt-1", "user-1");
    const after = await walletRef(rotated({ operatorJwtSecret: freshSecret("operator") }), "evt-1", "user-1");
    expect(before).toMatch(/^wal_[0-9a-z]{24}$/);
    expect(after).toBe(before);
  });

  it("changes when WALLET_REF_SECRET changes", async ({ expect }) => {
    const before = await walletRef(config, "evt-1", "user-1");
    const after = await walletRef(rotated({ walletRefSecret: freshSecret("wallet-ref") }), "evt-1", "user-1");
    expect(after).toMatch(/^wal_[0-9a-z]{24}$/);
    expect(after).not.toBe(before);
  });

  it("is stable for one wallet at one event, and differs across events and wallets", async ({ expect }) => {
    const ref = await walletRef(config, "evt-1", "user-1");
    expect(await walletRef(config, "evt-1", "user-1")).toBe(ref);
    expect(await walletRef(config, "evt-2", "user-1")).not.toBe(ref);
    expect(await walletRef(config, "evt-1", "user-2")).not.toBe(ref);
  });
});
