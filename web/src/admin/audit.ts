import { busy, byId, h, render, show } from "../lib/dom";
import { adminApi } from "./session";
import type { AuditVerification } from "./types";
import { errorText } from "./ui";

// Audit verification: walks the hash chain on the server and says whether it is intact, or names the
// first entry that does not fit and why.

const BREAK_REASONS: Record<string, string> = {
  seq_gap: "an entry is missing before it",
  prev_hash_mismatch: "it does not point at the entry before it",
  hash_mismatch: "its content does not match its hash (changed after it was written)",
  ts_regressed: "its time is earlier than the entry before it",
};

function showResult(result: AuditVerification): void {
  const box = byId("audit-result");
  box.classList.toggle("ok", result.ok);
  if (result.ok) {
    render(box, h("strong", {}, "Chain intact"), `: ${result.entries} entries verified.`);
  } else {
    const { broken_at: broken } = result;
    render(
      box,
      h("strong", {}, "Chain broken"),
      ` at entry ${broken.seq}: ${BREAK_REASONS[broken.reason] ?? broken.reason}. `,
      `${result.entries_checked} entries before it verified. Entry id `,
      h("span", { class: "code" }, broken.id),
      ".",
    );
  }
  show(box, true);
}

export function setupAudit(): void {
  const button = byId<HTMLButtonElement>("audit-verify");
  button.addEventListener(
    "click",
    () =>
      void busy(button, async () => {
        const box = byId("audit-result");
        render(box, "Verifying…");
        box.classList.remove("ok");
        show(box, true);
        try {
          showResult((await adminApi<AuditVerification>("GET", "/admin/audit/verify")).data);
        } catch (error) {
          render(box, errorText(error));
        }
      }),
  );
}
