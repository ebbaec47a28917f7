/** The cron expressions in wrangler.toml, told apart by `controller.cron`. */
export const CRON_EVERY_MINUTE = "* * * * *";
export const CRON_DAILY_EXPORT = "10 0 * * *";

/** Runs every job even when one throws; throws afterwards if any did, naming them. */
export async function runJobs(jobs: [name: string, job: () => Promise<unknown>][]): Promise<void> {
  const failed: string[] = [];
  for (const [name, job] of jobs) {
    try {
      await job();
    } catch (error) {
      failed.push(name);
      console.error(
        JSON.stringify({ level: "error", msg: "cron job failed", job: name, error: String(error) }),
      );
    }
  }
  if (failed.length > 0) throw new Error(`cron jobs failed: ${failed.join(", ")}`);
}
