// `npm run openapi`: writes openapi/openapi.json from the route definitions (the same document the
// Worker serves at /openapi.json). CI regenerates it and fails on any diff.
import { mkdirSync, writeFileSync } from "node:fs";
import { buildApp, OPENAPI_INFO } from "../src/app";

const document = buildApp().getOpenAPIDocument(OPENAPI_INFO);
mkdirSync("openapi", { recursive: true });
writeFileSync("openapi/openapi.json", `${JSON.stringify(document, null, 2)}\n`);
console.log(`openapi/openapi.json: ${Object.keys(document.paths ?? {}).length} paths`);
