import { describe, it, vi } from "vitest";
import { runJobs } from "../../src/cron";

// The every-minute cron runs several independent jobs: one that throws must not keep the others from
// their minute, and the run must still fail so that the failure shows.

describe("runJobs", () => {
  it("runs every job in order though one throws, then fails naming the jobs that threw", async ({
    expect,
  }) => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const ran: string[] = [];
    const run = runJobs([
      ["first", async () => ran.push("first")],
      [
        "second",
        async () => {
          ran.push("second");
          throw new Error("D1 busy");
        },
      ],
      ["third", async () => ran.push("third")],
    ]);
    await expect(run).rejects.toThrow("cron jobs failed: second");
    expect(ran).toEqual(["first", "second", "third"]);
    expect(errors.mock.calls.map(([line]) => JSON.parse(String(line)))).toEqual([
      { level: "error", msg: "cron job failed", job: "second", error: "Error: D1 busy" },
    ]);
    errors.mockRestore();
  });

  it("resolves when every job does", async ({ expect }) => {
    await expect(runJobs([["only", async () => undefined]])).resolves.toBeUndefined();
  });
});
