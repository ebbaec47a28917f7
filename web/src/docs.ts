// /docs: the API reference, rendered by Swagger UI from /openapi.json. Swagger UI's files are copied from
// the swagger-ui-dist package at build time (scripts/build-web.mjs), so the page loads nothing from another
// origin and runs under the pages' Content-Security-Policy (web/public/_headers) as it is.

interface OpenApiServer {
  url: string;
  description?: string;
}

interface SwaggerUiOptions {
  spec: { servers?: OpenApiServer[] };
  dom_id: string;
  /** null: the default would show a badge fetched from validator.swagger.io. */
  validatorUrl: null;
  deepLinking: boolean;
  displayOperationId: boolean;
  defaultModelsExpandDepth: number;
}

declare const SwaggerUIBundle: (options: SwaggerUiOptions) => unknown;

const DOCUMENT_PATH = "/openapi.json";
const mount = document.getElementById("api-reference");

async function showReference(): Promise<void> {
  const response = await fetch(DOCUMENT_PATH, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${DOCUMENT_PATH} answered ${response.status}`);
  const spec = (await response.json()) as { servers?: OpenApiServer[] };
  // "Try it out" talks to this deployment first: the document's own servers name local development, and
  // the page's CSP only lets it reach its own origin anyway.
  const others = (spec.servers ?? []).filter((server) => server.url.replace(/\/$/, "") !== location.origin);
  spec.servers = [{ url: location.origin, description: "This deployment" }, ...others];
  if (mount) mount.textContent = "";
  SwaggerUIBundle({
    spec,
    dom_id: "#api-reference",
    validatorUrl: null,
    deepLinking: true,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
  });
}

showReference().catch((error: unknown) => {
  if (mount) mount.textContent = `The API reference could not be loaded: ${String(error)}`;
});
