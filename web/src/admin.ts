import { setupAudit } from "./admin/audit";
import { setupDeadLetters } from "./admin/dead-letters";
import { setupDevices } from "./admin/devices";
import { setupOperators } from "./admin/operators";
import { setupPayments } from "./admin/payments";
import { setupProducts } from "./admin/products";
import { onSignIn, setupSession } from "./admin/session";
import { openCurrentTab, setupTabs } from "./admin/tabs";

// /admin: for administrators. Products and their inventory, staff, devices and their enrollment codes,
// payments that need a refund or review, audit verification and dead letters, one section at a time.
// Each module in ./admin/ is one section; this file wires them together.

setupTabs();
setupProducts();
setupOperators();
setupDevices();
setupPayments();
setupAudit();
setupDeadLetters();
onSignIn(openCurrentTab);
setupSession();
