/** The cron expressions in wrangler.toml, told apart by `controller.cron`. */
export const CRON_EVERY_MINUTE = "* * * * *";
export const CRON_DAILY_EXPORT = "10 0 * * *";
