// Orders: live status changes from /ws/orders/ (the status cell changes at once, then the server re-renders
// the tables so rows move between open and past orders), and cancel with a confirmation dialog. Without
// JavaScript the cancel form posts straight through.
import { watchOrders } from "./live.js";
import { fragmentRefresher } from "./refresh.js";
import { gettext, interpolate, statusLabel } from "./i18n.js";

const refresh = fragmentRefresher("orders-live", 500);
const dialog = document.getElementById("confirm-cancel");
let pendingForm = null;

function onOrder(order) {
  for (const row of document.querySelectorAll(`#orders-live tr[data-order-id="${order.id}"]`)) {
    const status = row.querySelector('[data-field="status"]');
    if (status) {
      status.dataset.value = order.status;
      status.textContent = statusLabel(order.status);
    }
    const filled = row.querySelector('[data-field="filled_quantity"]');
    if (filled) filled.textContent = Number(order.filled_quantity).toLocaleString("en-US");
  }
  refresh();
}

async function submitCancel(form) {
  const body = new FormData(form);
  try {
    const response = await fetch(form.action, { method: "POST", body, headers: { "HX-Request": "true" } });
    if (!response.ok) throw new Error(String(response.status));
    const live = document.getElementById("orders-live");
    live.outerHTML = await response.text();
    // Keep the outcome visible: live refreshes re-render #orders-live, the notice area stays.
    const notice = document.querySelector("#orders-live > .message");
    const area = document.getElementById("orders-notice");
    if (notice && area) area.replaceChildren(notice);
  } catch {
    form.submit(); // fall back to the plain POST
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.cancel-form");
  if (!form || !dialog || typeof dialog.showModal !== "function") return;
  event.preventDefault();
  pendingForm = form;
  const id = form.querySelector("[data-order-id]")?.dataset.orderId;
  const text = document.getElementById("confirm-cancel-text");
  if (text && id) text.textContent = interpolate(gettext("Cancel order #%(id)s?"), { id });
  dialog.returnValue = "";
  dialog.showModal();
});

dialog?.addEventListener("close", () => {
  const form = pendingForm;
  pendingForm = null;
  if (form && dialog.returnValue === "yes") submitCancel(form);
});

watchOrders({ onOrder, onReconnect: refresh });
