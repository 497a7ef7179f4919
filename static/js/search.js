// The stock search box of every page (templates/includes/_search.html): "/" or Ctrl+K focuses it from anywhere,
// typing asks /api/marketdata/stocks/search (code, Hangul name, 초성, romanised name), ↑/↓ move through the
// results, Enter opens the stock page, Esc closes. "+ 관심" adds the stock to the chosen watchlist.
import { gettext, interpolate } from "./i18n.js";
const form = document.getElementById("stock-search-form");
const input = document.getElementById("stock-search");
const list = document.getElementById("stock-search-results");
const status = document.getElementById("stock-search-status");
const DEBOUNCE_MS = 120;
const FLAGS = { halted: gettext("Trading halt"), administrative: gettext("Administrative issue") };
const WARNINGS = {
  caution: gettext("Investment caution"),
  warning: gettext("Investment warning"),
  risk: gettext("Investment risk"),
};

let results = [];
let active = -1;
let timer = null;
let asked = 0;

function typingElsewhere(target) {
  const tag = target?.tagName;
  return target?.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
}

function close() {
  list.hidden = true;
  input.setAttribute("aria-expanded", "false");
  input.removeAttribute("aria-activedescendant");
  active = -1;
}

function select(index) {
  const items = list.querySelectorAll("li");
  if (!items.length) return;
  active = (index + items.length) % items.length;
  items.forEach((li, i) => li.setAttribute("aria-selected", i === active ? "true" : "false"));
  input.setAttribute("aria-activedescendant", items[active].id);
  items[active].scrollIntoView({ block: "nearest" });
}

function open(code) {
  window.location.assign(`/stocks/${encodeURIComponent(code)}/`);
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function addToWatchlist(code, button) {
  const listId = document.body.dataset.watchlist || "";
  const url = `${form.dataset.watchlistsUrl}${listId ? `${listId}/` : "default/"}items/`;
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ code }),
  });
  const body = await response.json().catch(() => ({}));
  button.textContent = response.ok ? `✓ ${gettext("Added")}` : gettext("Not added");
  status.textContent = response.ok ? interpolate(gettext("%(code)s added to the watchlist"), { code }) : body?.error?.message || "";
  document.dispatchEvent(new CustomEvent("watchlist:changed", { detail: { code } }));
}

function render() {
  list.replaceChildren();
  results.forEach((hit, i) => {
    const li = document.createElement("li");
    li.id = `stock-search-option-${i}`;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", "false");
    li.dataset.code = hit.code;
    const code = document.createElement("span");
    code.className = "code";
    code.textContent = hit.code;
    const name = document.createElement("span");
    name.className = "name";
    const flags = Object.keys(FLAGS).filter((f) => hit[f]).map((f) => FLAGS[f]);
    if (hit.warning) flags.push(WARNINGS[hit.warning] || hit.warning);
    name.textContent = `${hit.name} · ${hit.market}${flags.length ? ` · ${flags.join(", ")}` : ""}`;
    const add = document.createElement("button");
    add.type = "button";
    add.textContent = `+ ${gettext("Watch")}`;
    add.setAttribute("aria-label", interpolate(gettext("Add %(name)s to the watchlist"), { name: hit.name }));
    add.tabIndex = -1;
    add.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus in the box
    add.addEventListener("click", (event) => {
      event.stopPropagation();
      addToWatchlist(hit.code, add);
    });
    li.append(code, name, add);
    li.addEventListener("mousedown", (event) => event.preventDefault());
    li.addEventListener("click", () => open(hit.code));
    list.append(li);
  });
  list.hidden = results.length === 0;
  input.setAttribute("aria-expanded", results.length ? "true" : "false");
  status.textContent = interpolate(gettext("%(count)s results"), { count: results.length });
  if (results.length) select(0);
}

async function search(query) {
  const ticket = ++asked;
  const params = new URLSearchParams({ q: query, limit: "10" });
  try {
    const response = await fetch(`${form.dataset.url}?${params}`, { headers: { Accept: "application/json" } });
    if (ticket !== asked) return; // a newer query was typed meanwhile
    results = response.ok ? await response.json() : [];
  } catch (error) {
    console.warn("search failed", error);
    results = [];
  }
  render();
}

if (form && input && list) {
  document.addEventListener("keydown", (event) => {
    const shortcut = (event.key === "/" && !typingElsewhere(event.target)) ||
      (event.key.toLowerCase() === "k" && (event.ctrlKey || event.metaKey));
    if (shortcut) {
      event.preventDefault();
      input.focus();
      input.select();
    }
  });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const query = input.value.trim();
    if (!query) {
      results = [];
      render();
      close();
      return;
    }
    timer = setTimeout(() => search(query.slice(0, 40)), DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      if (list.hidden && results.length) render();
      select(active + 1);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      select(active - 1);
    } else if (event.key === "Escape") {
      close();
      input.blur();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const hit = results[active] || results[0];
    if (hit) open(hit.code);
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
}
