import { busy, byId, h, render, say, show } from "../lib/dom";
import { adminApi, ownOperatorId } from "./session";
import { onTabOpen } from "./tabs";
import { OPERATOR_ROLES, type Operator, type OperatorRole } from "./types";
import { badge, chips, confirmInline, errorText, field, PagedList, splitList } from "./ui";

// Staff: operators with their roles and events; create one; change roles and events; deactivate or
// reactivate; set a new password. Deactivating and a new password both sign the operator out everywhere
// within 5 s, so each asks first, in place.

const ROLE_HELP: Record<OperatorRole, string> = {
  gate: "gate: scans tickets",
  pos: "pos: charges wallets at a till",
  analyst: "analyst: reports",
  supervisor: "supervisor: approves large refunds, late undos",
  admin: "admin: this page",
};

function roleChecks(prefix: string, checked: readonly string[]): HTMLElement[] {
  return OPERATOR_ROLES.map((role) =>
    h(
      "label",
      { class: "check" },
      h("input", {
        type: "checkbox",
        name: "roles",
        value: role,
        id: `${prefix}-${role}`,
        checked: checked.includes(role),
      }),
      ROLE_HELP[role],
    ),
  );
}

function checkedRoles(container: HTMLElement): OperatorRole[] {
  return [...container.querySelectorAll<HTMLInputElement>("input[name=roles]:checked")].map(
    (input) => input.value as OperatorRole,
  );
}

async function patchOperator(operator: Operator, body: Record<string, unknown>): Promise<Operator> {
  const path = `/admin/operators/${encodeURIComponent(operator.operator_id)}`;
  return (await adminApi<Operator>("PATCH", path, { body })).data;
}

function renderOperator(operator: Operator, message = ""): HTMLElement {
  const self = operator.operator_id === ownOperatorId();
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const replace = (next: Operator, text: string) => item.replaceWith(renderOperator(next, text));

  // Roles and events.
  const rolesBox = h(
    "div",
    { class: "checks" },
    ...roleChecks(`roles-${operator.operator_id}`, operator.roles),
  );
  const events = h("input", {
    autocapitalize: "none",
    autocomplete: "off",
    value: operator.event_ids.join(", "),
  });
  const saveRoles = h("button", { type: "submit" }, "Save roles");
  const cancelRoles = h("button", { type: "button", class: "secondary" }, "Cancel");
  const rolesForm = h(
    "form",
    { class: "fields edit", hidden: true, "aria-label": `Roles of ${operator.username}` },
    h("fieldset", { class: "roles" }, h("legend", {}, "Roles"), rolesBox),
    ...field("Events (comma-separated)", events),
    h("div", { class: "row" }, saveRoles, cancelRoles),
  );

  // A new password.
  const password = h("input", {
    type: "password",
    minlength: 12,
    maxlength: 256,
    autocomplete: "new-password",
  });
  const setPassword = h("button", { type: "submit", class: "danger" }, "Set password");
  const cancelPassword = h("button", { type: "button", class: "secondary" }, "Cancel");
  const passwordForm = h(
    "form",
    { class: "fields edit", hidden: true, "aria-label": `New password for ${operator.username}` },
    ...field("New password (at least 12 characters)", password),
    h("div", { class: "row" }, setPassword, cancelPassword),
  );

  const editRoles = h("button", { type: "button", class: "secondary" }, "Roles & events");
  const resetPassword = h("button", { type: "button", class: "secondary" }, "New password");
  const activation = operator.active
    ? h("button", { type: "button", class: "danger", hidden: self }, "Deactivate")
    : h("button", { type: "button", class: "secondary" }, "Reactivate");
  const actions = h("div", { class: "row actions" }, editRoles, resetPassword, activation);

  const item = h(
    "li",
    { class: "card item", "data-operator": operator.username },
    h(
      "div",
      { class: "head" },
      h("h3", {}, operator.username, self ? h("span", { class: "muted" }, " (you)") : null),
      badge(operator.active ? "Active" : "Deactivated", operator.active),
    ),
    chips(operator.roles, "no roles"),
    h(
      "p",
      { class: "muted" },
      operator.event_ids.length ? `Events: ${operator.event_ids.join(", ")}` : "No events",
    ),
    h("p", { class: "muted code" }, operator.operator_id),
    actions,
    rolesForm,
    passwordForm,
    status,
  );

  const open = (form: HTMLFormElement | null) => {
    show(rolesForm, form === rolesForm);
    show(passwordForm, form === passwordForm);
    show(actions, form === null);
    form?.querySelector<HTMLInputElement>("input")?.focus();
  };
  editRoles.addEventListener("click", () => open(rolesForm));
  resetPassword.addEventListener("click", () => open(passwordForm));
  cancelRoles.addEventListener("click", () => open(null));
  cancelPassword.addEventListener("click", () => {
    password.value = "";
    open(null);
  });

  rolesForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const roles = checkedRoles(rolesBox);
    if (roles.length === 0)
      return say(status, "Choose at least one role (or deactivate the operator)", "error");
    if (self && !roles.includes("admin"))
      return say(status, "You cannot remove your own admin role", "error");
    void busy(saveRoles, async () => {
      try {
        replace(await patchOperator(operator, { roles, event_ids: splitList(events.value) }), "Roles saved");
      } catch (error) {
        say(status, errorText(error), "error");
      }
    });
  });

  passwordForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (password.value.length < 12) return say(status, "The password needs at least 12 characters", "error");
    const formRow = setPassword.parentElement as HTMLElement;
    confirmInline(
      formRow,
      status,
      {
        text: `${operator.username} will be signed out everywhere within 5 s and must use the new password.`,
        confirm: "Confirm new password",
      },
      async () => {
        const path = `/admin/operators/${encodeURIComponent(operator.operator_id)}/password`;
        const { data } = await adminApi<Operator>("POST", path, { body: { password: password.value } });
        replace(data, "Password replaced: earlier sign-ins no longer work");
      },
    );
  });

  activation.addEventListener("click", () => {
    if (!operator.active) {
      void busy(activation, async () => {
        try {
          replace(await patchOperator(operator, { active: true }), "Reactivated: they can sign in again");
        } catch (error) {
          say(status, errorText(error), "error");
        }
      });
      return;
    }
    confirmInline(
      actions,
      status,
      {
        text: `Deactivate ${operator.username}? Their sign-ins stop working within 5 s and their open sessions close.`,
        confirm: `Deactivate ${operator.username}`,
      },
      async () =>
        replace(
          await patchOperator(operator, { active: false }),
          "Deactivated: their sign-ins no longer work",
        ),
    );
  });

  if (message) say(status, message, "ok");
  return item;
}

export function setupOperators(): void {
  const list = new PagedList<Operator>({
    path: "/admin/operators",
    key: "operators",
    list: byId("operators"),
    more: byId<HTMLButtonElement>("operators-more"),
    status: byId("operators-status"),
    empty: "No operators.",
    render: (operator) => renderOperator(operator),
  });
  onTabOpen("staff", () => void list.reload());
  byId("operators-refresh").addEventListener(
    "click",
    (event) => void busy(event.currentTarget as HTMLButtonElement, () => list.reload()),
  );

  const roles = byId("operator-roles");
  render(roles, ...roleChecks("new-operator", []));
  const form = byId<HTMLFormElement>("operator-form");
  const status = byId("operator-form-status");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const chosen = checkedRoles(roles);
    if (chosen.length === 0) return say(status, "Choose at least one role", "error");
    void busy(byId<HTMLButtonElement>("operator-create"), async () => {
      say(status, "Creating…");
      try {
        const { data: created } = await adminApi<Operator>("POST", "/admin/operators", {
          body: {
            username: String(data.get("username") ?? "").trim(),
            password: String(data.get("password") ?? ""),
            roles: chosen,
            event_ids: splitList(String(data.get("event_ids") ?? "")),
          },
        });
        form.reset();
        say(status, `Created ${created.username}`, "ok");
        byId("operators").prepend(renderOperator(created, "Created"));
        say(byId("operators-status"), "");
      } catch (error) {
        say(status, errorText(error), "error");
      }
    });
  });
}
