import { createRoute, z } from "@hono/zod-openapi";
import {
  createProduct,
  listActiveProducts,
  listProducts,
  PRODUCT_PAGE_MAX,
  updateProduct,
} from "../db/catalog";
import { getDb } from "../db/client";
import { DO_LOCATION_HINTS } from "../domain/placement";
import { ApiError } from "../errors";
import { requireOperator } from "../http/auth";
import { createRouter } from "../http/context";
import {
  BODY_PROBLEMS,
  IsoTimestamp,
  idPageQuery,
  json,
  jsonBody,
  NextCursor,
  problems,
} from "../http/schemas";
import { forgetProduct } from "../services/catalog-cache";

const FunctionName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/)
  .openapi({ example: "bus", description: "Lowercase name of what a use opens: `bus`, `ferry`, `museum`…" });

export const ProductFunctionSchema = z
  .object({ function: FunctionName, uses: z.number().int().min(1).max(1_000) })
  .openapi("ProductFunction");

const ProductSchema = z
  .object({
    id: z.string().openapi({ example: "prd_8k2m4n6p8r0t2v4x6z8b" }),
    name: z.string(),
    description: z.string(),
    price_cents: z.number().int(),
    currency: z.string().openapi({ example: "EUR" }),
    functions: z.array(ProductFunctionSchema),
    available: z.number().int().openapi({ description: "sellable − reserved − sold" }),
  })
  .openapi("Product");

const VenueRegion = z.enum(DO_LOCATION_HINTS).openapi({
  description:
    "The region of the venue the product is used at, as a Durable Objects location hint (`wnam`, `enam`, " +
    "`sam`, `weur`, `eeur`, `apac`, `oc`, `afr`, `me`). Each ticket's object, which decides its scans, is " +
    "created near it and stays there, so the venue's gates reach it in one short hop. `null`: created " +
    "near whoever calls it first. A change applies to objects not created yet.",
  example: "weur",
});

const AdminProductSchema = ProductSchema.extend({
  sellable: z.number().int(),
  reserved: z.number().int(),
  sold: z.number().int(),
  active: z.boolean(),
  created_at: IsoTimestamp,
  updated_at: IsoTimestamp,
  venue_region: VenueRegion.nullable(),
}).openapi("AdminProduct");

export const MAX_PRICE_CENTS = 10_000_000;
export const MAX_SELLABLE = 1_000_000;
const MAX_FUNCTIONS_PER_PRODUCT = 20;

const NewProductSchema = z
  .object({
    name: z.string().trim().min(1).max(120),
    description: z.string().max(2_000).default(""),
    price_cents: z.number().int().min(0).max(MAX_PRICE_CENTS),
    sellable: z.number().int().min(0).max(MAX_SELLABLE),
    functions: z
      .array(ProductFunctionSchema)
      .min(1)
      .max(MAX_FUNCTIONS_PER_PRODUCT)
      .refine(
        (list) => new Set(list.map((f) => f.function)).size === list.length,
        "Function names must be unique",
      ),
    venue_region: VenueRegion.nullable().optional(),
  })
  .strict()
  .openapi("NewProduct");

const ProductPatchSchema = z
  .object({
    name: z.string().trim().min(1).max(120).optional(),
    description: z.string().max(2_000).optional(),
    price_cents: z.number().int().min(0).max(MAX_PRICE_CENTS).optional(),
    sellable: z.number().int().min(0).max(MAX_SELLABLE).optional(),
    active: z.boolean().optional(),
    venue_region: VenueRegion.nullable().optional(),
  })
  .strict()
  .refine((patch) => Object.keys(patch).length > 0, "At least one field must be given")
  .openapi("ProductPatch");

const AdminProductListSchema = z
  .object({
    products: z.array(AdminProductSchema),
    next_cursor: NextCursor,
  })
  .openapi("AdminProductList");

const ProductPageQuery = idPageQuery(PRODUCT_PAGE_MAX);

const ProductIdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" }, example: "prd_8k2m4n6p8r0t2v4x6z8b" }),
});

export const catalogRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/catalog",
      operationId: "listCatalog",
      tags: ["Catalog"],
      summary: "Products for sale, with live availability",
      description:
        "Public. Active products only; `available = sellable − reserved − sold` at the time of the read.",
      responses: {
        200: json(z.object({ products: z.array(ProductSchema) }).openapi("Catalog"), "The catalog"),
      },
    }),
    async (c) => c.json({ products: await listActiveProducts(getDb(c.env.DB)) }, 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/admin/products",
      operationId: "listAdminProducts",
      tags: ["Admin"],
      summary: "List every product with its inventory",
      description:
        "Role `admin`. Active and inactive products with `sellable`, `reserved`, `sold` and `available`, in " +
        `id order, up to \`limit\` (max ${PRODUCT_PAGE_MAX}) per page.`,
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { query: ProductPageQuery },
      responses: {
        200: json(AdminProductListSchema, "A page of products"),
        ...problems("validation_failed", "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const page = await listProducts(getDb(c.env.DB), { after: query.cursor, limit: query.limit });
      return c.json({ products: page.products, next_cursor: page.next }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/admin/products",
      operationId: "createProduct",
      tags: ["Admin"],
      summary: "Create a product",
      description: "Role `admin`. Priced in the deployment currency; each function name appears once.",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { body: jsonBody(NewProductSchema) },
      responses: {
        201: json(AdminProductSchema, "Created"),
        ...problems(...BODY_PROBLEMS, "unauthenticated", "forbidden"),
      },
    }),
    async (c) => {
      const config = c.get("config");
      const db = getDb(c.env.DB);
      const now = new Date();
      const input = c.req.valid("json");
      const product = await createProduct(
        db,
        c.env.EVENTS,
        input,
        config.currency,
        now,
        c.get("operator").operatorId,
      );
      return c.json(product, 201);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/admin/products/{id}",
      operationId: "updateProduct",
      tags: ["Admin"],
      summary: "Change a product",
      description:
        "Role `admin`. `sellable` can never be set below `reserved + sold` (409 `sellable_below_committed`).",
      security: [{ operatorToken: [] }],
      middleware: [requireOperator("admin")] as const,
      request: { params: ProductIdParam, body: jsonBody(ProductPatchSchema) },
      responses: {
        200: json(AdminProductSchema, "Updated"),
        ...problems(
          ...BODY_PROBLEMS,
          "unauthenticated",
          "forbidden",
          "not_found",
          "sellable_below_committed",
        ),
      },
    }),
    async (c) => {
      const db = getDb(c.env.DB);
      const now = new Date();
      const changes = c.req.valid("json");
      const id = c.req.valid("param").id;
      const updated = await updateProduct(db, c.env.EVENTS, id, changes, c.get("operator").operatorId, now);
      if (!updated.ok && updated.code === "not_found") throw new ApiError("not_found", "No such product");
      if (!updated.ok) {
        throw new ApiError("sellable_below_committed", "sellable cannot be set below reserved + sold", {
          committed: updated.committed,
        });
      }
      const { product } = updated;
      // Orders priced in this isolate see the change at once; elsewhere within CATALOG_CACHE_MS.
      forgetProduct(product.id);
      return c.json(product, 200);
    },
  );
