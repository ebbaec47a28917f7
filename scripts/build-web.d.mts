// Types for scripts/build-web.mjs, which plain Node runs from `npm run dev` before anything is compiled.
export const WEB_DIST: string;
export function buildWeb(options?: { watch?: boolean }): Promise<void>;
