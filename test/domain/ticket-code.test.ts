import fc from "fast-check";
import { describe, it } from "vitest";
import {
  generateTicketCode,
  normalizeTicketCode,
  TICKET_CODE_LENGTH,
  TICKET_CODE_RANDOM_BITS,
} from "../../src/domain/ticket-code";

const DATA_SYMBOLS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHECK_SYMBOLS = `${DATA_SYMBOLS}*~$=U`;
/** Enough codes that every position sees many symbols; each is checked against every typo exhaustively. */
const SAMPLE_CODES = 300;

const samples = () => Array.from({ length: SAMPLE_CODES }, generateTicketCode);

describe("ticket codes", () => {
  it("are 14 Crockford symbols with at least 60 random bits, and validate as generated", ({ expect }) => {
    expect(TICKET_CODE_RANDOM_BITS).toBeGreaterThanOrEqual(60);
    const codes = samples();
    for (const code of codes) {
      expect(code).toHaveLength(TICKET_CODE_LENGTH);
      expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{13}[0-9A-HJKMNP-TV-Z*~$=U]$/);
      expect(normalizeTicketCode(code)).toBe(code);
    }
    expect(new Set(codes).size).toBe(codes.length);
  });

  it("every single-symbol substitution is rejected", ({ expect }) => {
    for (const code of samples()) {
      for (let position = 0; position < code.length; position++) {
        const alphabet = position === code.length - 1 ? CHECK_SYMBOLS : DATA_SYMBOLS;
        for (const symbol of alphabet) {
          if (symbol === code[position]) continue;
          const typo = code.slice(0, position) + symbol + code.slice(position + 1);
          expect(normalizeTicketCode(typo), `${code} → ${typo}`).toBeUndefined();
        }
      }
    }
  });

  it("every adjacent transposition is rejected", ({ expect }) => {
    for (const code of samples()) {
      for (let position = 0; position < code.length - 1; position++) {
        const [a, b] = [code.charAt(position), code.charAt(position + 1)];
        if (a === b) continue;
        const typo = code.slice(0, position) + b + a + code.slice(position + 2);
        expect(normalizeTicketCode(typo), `${code} → ${typo}`).toBeUndefined();
      }
    }
  });

  it("normalizes case, confusable letters and separators", ({ expect }) => {
    const code = generateTicketCode();
    expect(normalizeTicketCode(code.toLowerCase())).toBe(code);
    const grouped = `${code.slice(0, 4)}-${code.slice(4, 8)} ${code.slice(8, 12)}-${code.slice(12)}`;
    expect(normalizeTicketCode(grouped)).toBe(code);
    // The same code with every 1 typed as I or l and every 0 typed as O or o.
    const misread = [...code.slice(0, -1)]
      .map((symbol, i) =>
        symbol === "1" ? (i % 2 ? "I" : "l") : symbol === "0" ? (i % 2 ? "O" : "o") : symbol,
      )
      .join("");
    expect(normalizeTicketCode(misread + code.slice(-1))).toBe(code);
    expect(normalizeTicketCode("0000000000000-0")).toBe("00000000000000");
    expect(normalizeTicketCode("OOOOOOOOOOOOOO")).toBe("00000000000000");
  });

  it("rejects wrong lengths, foreign symbols and check symbols in the data", ({ expect }) => {
    const code = generateTicketCode();
    for (const bad of [
      "",
      code.slice(0, -1),
      `${code}0`,
      `U${code.slice(1)}`,
      `*${code.slice(1)}`,
      `${code.slice(0, 5)}!${code.slice(6)}`,
      "-".repeat(40),
      `${code}${" ".repeat(40)}`,
    ]) {
      expect(normalizeTicketCode(bad), bad).toBeUndefined();
    }
  });

  it("normalizeTicketCode: any text is a canonical code or undefined, never an error (routes answer 422)", ({
    expect,
  }) => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (input) => {
        const code = normalizeTicketCode(input);
        if (code !== undefined) expect(normalizeTicketCode(code)).toBe(code);
      }),
      { numRuns: 500 },
    );
  });
});
