// Types for scripts/seed.mjs, which plain Node runs from `npm run dev` before anything is compiled.
export const DEMO_PASSWORD: string;
export function seedSql(now?: string): string;
export function seedLocalDatabase(...args: unknown[]): Promise<void>;
