import { defineConfig } from "vitest/config";

// The browser suite: runs in Node (not workerd), starts the app with wrangler's dev server and drives
// Debian's Chromium through playwright-core. `npm run test:e2e`; `npm test` runs it after the workerd suite.
export default defineConfig({
  test: {
    include: ["test/e2e/**/*.test.ts"],
    globalSetup: ["./test/e2e/global-setup.ts"],
    // Two cores: one browser flow at a time keeps timings (and the QR tokens' 30 s lives) predictable.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
