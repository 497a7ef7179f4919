// Watchlists: the dashboard's list picker, the stock page's "+ 관심종목" button and the /watchlists/ page
// (create, rename, choose, delete, reorder lists and stocks). Every change goes through /api/watchlists/ and the
// page is re-rendered by the server afterwards (the dashboard then watches the new list live).
import { gettext, interpolate } from "./i18n.js";
const API = "/api/watchlists/";

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function call(method, path, body) {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.error?.message || `HTTP ${response.status}`);
  return data;
}

function say(text) {
  const target = document.getElementById("watchlist-message") || document.getElementById("watchlist-add-status");
  if (target) target.textContent = text;
}

// --- dashboard picker -------------------------------------------------------------------------------------
const picker = document.getElementById("watchlist-picker");
if (picker && !picker.dataset.bound) {
  picker.dataset.bound = "1";
  if (picker.dataset.watchlistId) document.body.dataset.watchlist = picker.dataset.watchlistId;
  document.getElementById("watchlist-select")?.addEventListener("change", async (event) => {
    await call("PATCH", `${event.target.value}/`, { chosen: true });
    window.location.reload();
  });
  document.addEventListener("watchlist:changed", () => window.location.reload());
}

// --- stock page button --------------------------------------------------------------------------------------
const adder = document.getElementById("watchlist-add");
if (adder && !adder.dataset.bound) {
  adder.dataset.bound = "1";
  const select = document.getElementById("watchlist-add-select");
  if (select) document.body.dataset.watchlist = select.value;
  select?.addEventListener("change", () => {
    document.body.dataset.watchlist = select.value;
  });
  document.getElementById("watchlist-add-button")?.addEventListener("click", async () => {
    const status = document.getElementById("watchlist-add-status");
    try {
      const list = await call("POST", `${select ? select.value : "default"}/items/`, { code: adder.dataset.code });
      status.textContent = interpolate(gettext("Added to %(name)s"), { name: list.name });
    } catch (error) {
      status.textContent = `${gettext("Not added")}: ${error.message}`;
    }
  });
}

// --- /watchlists/ --------------------------------------------------------------------------------------------
const manager = document.getElementById("watchlists");
if (manager && !manager.dataset.bound) {
  manager.dataset.bound = "1";
  document.getElementById("watchlist-create")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("watchlist-new-name");
    try {
      await call("POST", "", { name: input.value });
      window.location.reload();
    } catch (error) {
      say(`${gettext("Not created")}: ${error.message}`);
    }
  });
  const move = (items, index, by) => {
    const order = [...items];
    const [moved] = order.splice(index, 1);
    order.splice(Math.max(0, Math.min(order.length, index + by)), 0, moved);
    return order;
  };
  manager.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const section = button.closest("[data-watchlist-id]");
    const id = section.dataset.watchlistId;
    const lists = [...manager.querySelectorAll("[data-watchlist-id]")].map((s) => Number(s.dataset.watchlistId));
    const codes = [...section.querySelectorAll("li[data-code]")].map((li) => li.dataset.code);
    const code = button.closest("li[data-code]")?.dataset.code;
    try {
      switch (button.dataset.action) {
        case "list-up":
        case "list-down":
          await call("POST", "order", { ids: move(lists, lists.indexOf(Number(id)), button.dataset.action === "list-up" ? -1 : 1) });
          break;
        case "choose":
          await call("PATCH", `${id}/`, { chosen: true });
          break;
        case "rename": {
          const name = window.prompt(gettext("New name"), section.querySelector("h2").firstChild.textContent.trim());
          if (!name) return;
          await call("PATCH", `${id}/`, { name });
          break;
        }
        case "delete":
          if (!window.confirm(gettext("Delete this list?"))) return;
          await call("DELETE", `${id}/`);
          break;
        case "item-up":
        case "item-down":
          await call("POST", `${id}/items/order`, { codes: move(codes, codes.indexOf(code), button.dataset.action === "item-up" ? -1 : 1) });
          break;
        case "item-remove":
          await call("DELETE", `${id}/items/${code}/`);
          break;
        default:
          return;
      }
      window.location.reload();
    } catch (error) {
      say(`${gettext("Failed")}: ${error.message}`);
    }
  });
}
