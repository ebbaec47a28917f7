import { busy, byId, h, say } from "../lib/dom";
import { dateTime } from "../lib/format";
import { setupEnrollmentPanel, showEnrollmentCode } from "./enrollment";
import { adminApi } from "./session";
import { onTabOpen } from "./tabs";
import type { Device, EnrollmentCode } from "./types";
import { badge, chips, confirmInline, errorText, PagedList, splitList } from "./ui";

// Devices: gate scanners and tills. Register one (its one-time enrollment code is shown at once), issue
// a fresh code (a replaced phone), revoke or reactivate. Revoking stops the device's open sessions within
// 5 s, so it asks first, in place.

function scope(device: Device): string {
  const parts = [device.kind === "gate" ? "Gate" : "Till"];
  if (device.location_id) parts.push(`at ${device.location_id}`);
  if (device.event_id) parts.push(`for ${device.event_id}`);
  return parts.join(" ");
}

function renderDevice(device: Device, message = ""): HTMLElement {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const path = `/admin/devices/${encodeURIComponent(device.device_id)}`;
  const replace = (next: Device, text: string) => item.replaceWith(renderDevice(next, text));
  const newCode = h("button", { type: "button", class: "secondary" }, "New enrollment code");
  const activation = device.active
    ? h("button", { type: "button", class: "danger" }, "Revoke")
    : h("button", { type: "button", class: "secondary" }, "Reactivate");
  const actions = h("div", { class: "row actions" }, newCode, activation);
  const item = h(
    "li",
    { class: "card item", "data-device": device.device_id },
    h(
      "div",
      { class: "head" },
      h("h3", { class: "code" }, device.device_id),
      badge(device.active ? "Active" : "Revoked", device.active),
    ),
    h("p", {}, scope(device)),
    device.kind === "gate" ? chips(device.functions ?? [], "every function") : null,
    h(
      "p",
      { class: "muted" },
      device.enrolled_at
        ? `Key enrolled ${dateTime(device.enrolled_at)} (${device.key_alg ?? "?"})`
        : "Not enrolled yet",
    ),
    actions,
    status,
  );

  newCode.addEventListener(
    "click",
    () =>
      void busy(newCode, async () => {
        try {
          const { data } = await adminApi<EnrollmentCode>("POST", `${path}/enrollment`);
          showEnrollmentCode(data);
          say(status, "New code issued: earlier unused codes no longer work", "ok");
        } catch (error) {
          say(status, errorText(error), "error");
        }
      }),
  );

  activation.addEventListener("click", () => {
    if (!device.active) {
      void busy(activation, async () => {
        try {
          replace(
            (await adminApi<Device>("PATCH", path, { body: { active: true } })).data,
            "Reactivated: it can open sessions again",
          );
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
        text: `Revoke ${device.device_id}? Its open sessions stop working within 5 s and it cannot open new ones.`,
        confirm: `Revoke ${device.device_id}`,
      },
      async () =>
        replace(
          (await adminApi<Device>("PATCH", path, { body: { active: false } })).data,
          "Revoked: its sessions stop working within 5 s",
        ),
    );
  });

  if (message) say(status, message, "ok");
  return item;
}

export function setupDevices(): void {
  setupEnrollmentPanel();
  const list = new PagedList<Device>({
    path: "/admin/devices",
    key: "devices",
    list: byId("devices"),
    more: byId<HTMLButtonElement>("devices-more"),
    status: byId("devices-status"),
    empty: "No devices yet: register the first below “New device”.",
    render: (device) => renderDevice(device),
  });
  onTabOpen("devices", () => void list.reload());
  byId("devices-refresh").addEventListener(
    "click",
    (event) => void busy(event.currentTarget as HTMLButtonElement, () => list.reload()),
  );

  const form = byId<HTMLFormElement>("device-form");
  const status = byId("device-form-status");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const text = (name: string) => String(data.get(name) ?? "").trim() || undefined;
    const kind = text("kind") === "pos" ? "pos" : "gate";
    const functions = splitList(String(data.get("functions") ?? ""));
    void busy(byId<HTMLButtonElement>("device-create"), async () => {
      say(status, "Registering…");
      try {
        const { data: created } = await adminApi<Device & EnrollmentCode>("POST", "/admin/devices", {
          body: {
            device_id: text("device_id"),
            kind,
            location_id: text("location_id"),
            event_id: text("event_id"),
            functions: kind === "gate" && functions.length > 0 ? functions : undefined,
          },
        });
        form.reset();
        say(status, `Registered ${created.device_id}`, "ok");
        byId("devices").prepend(renderDevice(created));
        say(byId("devices-status"), "");
        showEnrollmentCode(created);
      } catch (error) {
        say(status, errorText(error), "error");
      }
    });
  });
}
