// The domain types the API speaks. Route schemas (src/http/schemas.ts) describe the same shapes for
// OpenAPI; these are what domain code and stores pass around.

export const OPERATOR_ROLES = ["gate", "pos", "analyst", "admin"] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

export const ORDER_STATUSES = ["PENDING_PAYMENT", "PAID", "PAYMENT_FAILED", "EXPIRED"] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** One entitlement a product grants per ticket: e.g. `{ function: "bus", uses: 10 }`. */
export interface ProductFunction {
  function: string;
  uses: number;
}

export interface Product {
  id: string;
  name: string;
  description: string;
  price_cents: number;
  currency: string;
  functions: ProductFunction[];
  available: number;
}

export interface AdminProduct extends Product {
  sellable: number;
  reserved: number;
  sold: number;
  active: boolean;
  created_at: string;
  updated_at: string;
}

export interface OrderItem {
  product_id: string;
  quantity: number;
  unit_price_cents: number;
}

export interface Order {
  order_id: string;
  status: OrderStatus;
  items: OrderItem[];
  total_cents: number;
  credits_applied_cents: number;
  amount_due_cents: number;
  currency: string;
  created_at: string;
  expires_at: string;
}

/** Who is calling: a buyer (identity provider's `sub`) or a staff operator. */
export type Caller =
  | { kind: "buyer"; userId: string }
  | { kind: "operator"; operatorId: string; roles: OperatorRole[]; eventIds: string[] };
