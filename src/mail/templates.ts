import type { ReceiptLine } from "../db/schema";

// The receipts' words, as pure functions of what the receipt holds: a plain-text and an HTML body for
// each. Every value placed in HTML goes through the `html` tag below, which escapes it, so a product
// named `<script>` arrives as text.

/** One locale and one time zone for every receipt: we know neither the buyer's language nor their zone. */
const RECEIPT_LOCALE = "en-GB";
const RECEIPT_TIME_ZONE = "UTC";

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

export interface OrderReceiptContent {
  receiptId: string;
  orderId: string;
  currency: string;
  lines: ReceiptLine[];
  totalCents: number;
  /** What the buyer paid with money; the rest of the total came from wallet credits. */
  amountPaidCents: number;
  paidAt: string;
  /** The order's ticket codes (empty when not known). */
  tickets: { code: string; productId: string }[];
  /** The buyer page's tickets tab; omitted when the deployment's public address is not known. */
  ticketsUrl?: string;
}

export interface TopupReceiptContent {
  receiptId: string;
  amountCents: number;
  currency: string;
  createdAt: string;
}

export interface PosSaleReceiptContent {
  receiptId: string;
  amountCents: number;
  currency: string;
  eventId: string | null;
  deviceId: string | null;
  reference: string | null;
  createdAt: string;
}

export interface PosRefundReceiptContent {
  receiptId: string;
  amountCents: number;
  currency: string;
  eventId: string | null;
  reference: string | null;
  createdAt: string;
  /** The sale it reverses: its receipt always, its amount and time when that receipt has been written. */
  sale: { receiptId: string; amountCents?: number; createdAt?: string };
}

// --- Formatting -------------------------------------------------------------------------------------

const moneyFormats = new Map<string, Intl.NumberFormat>();

/** Minor units in the currency's own format: 2400 EUR → "€24.00", 2400 JPY → "JP¥2,400". */
export function formatMoney(minorUnits: number, currency: string): string {
  let format = moneyFormats.get(currency);
  if (!format) {
    format = new Intl.NumberFormat(RECEIPT_LOCALE, { style: "currency", currency });
    moneyFormats.set(currency, format);
  }
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(minorUnits / 10 ** digits);
}

const timeFormat = new Intl.DateTimeFormat(RECEIPT_LOCALE, {
  dateStyle: "medium",
  timeStyle: "short",
  timeZone: RECEIPT_TIME_ZONE,
});

export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${timeFormat.format(date)} ${RECEIPT_TIME_ZONE}`;
}

/** The buyer page's tickets tab under the deployment's public address; only http(s) links are made. */
export function ticketsPageUrl(publicBaseUrl: string | undefined): string | undefined {
  if (!publicBaseUrl) return undefined;
  try {
    const url = new URL("/#tickets", publicBaseUrl);
    return url.protocol === "https:" || url.protocol === "http:" ? url.toString() : undefined;
  } catch {
    return undefined;
  }
}

// --- HTML with escaping by construction ----------------------------------------------------------------

/** Markup built by `html`: inserted into other markup as is. Anything else is escaped. */
class SafeHtml {
  constructor(readonly markup: string) {}
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character] ?? character);
}

type HtmlValue = SafeHtml | string | number | null | undefined | false | readonly HtmlValue[];

function renderValue(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.markup;
  if (Array.isArray(value)) return value.map(renderValue).join("");
  if (value === null || value === undefined || value === false) return "";
  return escapeHtml(String(value));
}

/** A template tag whose every interpolated value is escaped, unless it is itself `html` output. */
function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let markup = strings[0] ?? "";
  values.forEach((value, i) => {
    markup += renderValue(value) + (strings[i + 1] ?? "");
  });
  return new SafeHtml(markup);
}

/** The shared frame: a heading, the receipt's rows as a table, and what follows them. */
function page(title: string, rows: [string, string][], after: SafeHtml | false, receiptId: string): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>
<body style="font-family: system-ui, sans-serif; color: #111; max-width: 36em; margin: 0 auto; padding: 1em">
<h1 style="font-size: 1.25em">${title}</h1>
<table style="border-collapse: collapse; width: 100%">
${rows.map(([label, value]) => html`<tr><th style="text-align: left; padding: 0.25em 1em 0.25em 0; font-weight: normal; color: #555">${label}</th><td style="text-align: right; padding: 0.25em 0">${value}</td></tr>\n`)}</table>
${after}
<p style="color: #777; font-size: 0.85em">Receipt ${receiptId}</p>
</body></html>
`.markup;
}

function textBody(title: string, rows: [string, string][], after: string[], receiptId: string): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return [
    title,
    "",
    ...rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`),
    ...(after.length > 0 ? ["", ...after] : []),
    "",
    `Receipt ${receiptId}`,
    "",
  ].join("\n");
}

// --- The receipts --------------------------------------------------------------------------------------

export function orderReceiptEmail(content: OrderReceiptContent): RenderedEmail {
  const money = (cents: number) => formatMoney(cents, content.currency);
  const creditsCents = content.totalCents - content.amountPaidCents;
  const codesOf = (productId: string) =>
    content.tickets.filter((ticket) => ticket.productId === productId).map((ticket) => ticket.code);
  const lineLabel = (line: ReceiptLine) =>
    `${line.quantity} × ${line.product_name} (${money(line.unit_price_cents)} each)`;
  const rows: [string, string][] = [
    ...content.lines.map((line): [string, string] => [
      lineLabel(line),
      money(line.quantity * line.unit_price_cents),
    ]),
    ["Total", money(content.totalCents)],
    ...(creditsCents > 0 ? [["Wallet credits used", money(creditsCents)] as [string, string]] : []),
    ["Amount paid", money(content.amountPaidCents)],
    ["Paid at", formatTime(content.paidAt)],
  ];
  const title = `Your tickets: order ${content.orderId}`;
  const ticketLines = content.lines.flatMap((line) => {
    const codes = codesOf(line.product_id);
    return codes.length > 0 ? [{ name: line.product_name, codes }] : [];
  });

  const text = textBody(
    title,
    rows,
    [
      ...(ticketLines.length > 0
        ? ["Ticket codes:", ...ticketLines.map(({ name, codes }) => `  ${name}: ${codes.join(", ")}`)]
        : []),
      ...(content.ticketsUrl ? ["", `Your tickets and their QR codes: ${content.ticketsUrl}`] : []),
    ],
    content.receiptId,
  );
  const after = html`${
    ticketLines.length > 0 &&
    html`<h2 style="font-size: 1em">Ticket codes</h2>
<ul>${ticketLines.map(({ name, codes }) => html`<li>${name}: <code>${codes.join(", ")}</code></li>`)}</ul>
`
  }${content.ticketsUrl && html`<p><a href="${content.ticketsUrl}">Your tickets and their QR codes</a></p>`}`;
  return { subject: title, text, html: page(title, rows, after, content.receiptId) };
}

export function topupReceiptEmail(content: TopupReceiptContent): RenderedEmail {
  const amount = formatMoney(content.amountCents, content.currency);
  const title = `Wallet top-up of ${amount}`;
  const rows: [string, string][] = [
    ["Added to your wallet", amount],
    ["Time", formatTime(content.createdAt)],
  ];
  return plainReceipt(title, rows, content.receiptId);
}

export function posSaleReceiptEmail(content: PosSaleReceiptContent): RenderedEmail {
  const amount = formatMoney(content.amountCents, content.currency);
  const title = `You paid ${amount} with your wallet`;
  const rows: [string, string][] = [
    ["Amount", amount],
    ...optionalRow("Event", content.eventId),
    ...optionalRow("Till", content.deviceId),
    ["Time", formatTime(content.createdAt)],
    ...optionalRow("Reference", content.reference),
  ];
  return plainReceipt(title, rows, content.receiptId);
}

export function posRefundReceiptEmail(content: PosRefundReceiptContent): RenderedEmail {
  const money = (cents: number) => formatMoney(cents, content.currency);
  const amount = money(content.amountCents);
  const title = `Refund of ${amount} to your wallet`;
  const { sale } = content;
  const rows: [string, string][] = [
    ["Refunded", amount],
    ["Reverses sale", sale.receiptId],
    ...(sale.amountCents !== undefined ? [["Sale amount", money(sale.amountCents)] as [string, string]] : []),
    ...(sale.createdAt ? [["Sale time", formatTime(sale.createdAt)] as [string, string]] : []),
    ...optionalRow("Event", content.eventId),
    ["Time", formatTime(content.createdAt)],
    ...optionalRow("Reference", content.reference),
  ];
  return plainReceipt(title, rows, content.receiptId);
}

/** A receipt of one title and its rows, with no lines or link: a top-up, a POS sale or refund. */
function plainReceipt(title: string, rows: [string, string][], receiptId: string): RenderedEmail {
  return {
    subject: title,
    text: textBody(title, rows, [], receiptId),
    html: page(title, rows, false, receiptId),
  };
}

function optionalRow(label: string, value: string | null): [string, string][] {
  return value ? [[label, value]] : [];
}
