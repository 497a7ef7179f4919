// Dashboard: live watch list. Every quote updates its row (and its halted / VI badges); each updated cell flashes
// red (up) or blue (down).
import { changeText, krw, pctSigned, flash, setDirectionClass } from "./format.js";
import { watchMarket } from "./live.js";
import { renderBadges } from "./marketday.js";
import { setFeedStatus, startStatusBar } from "./status.js";

const table = document.getElementById("watchlist");
const rows = new Map();
for (const row of table ? table.querySelectorAll("tbody tr[data-code]") : []) rows.set(row.dataset.code, row);

function updateRow(quote) {
  const row = rows.get(quote.code);
  if (!row) return;
  renderBadges(row.querySelector("[data-badges]"), quote);
  const previous = row.dataset.price === "" ? null : Number(row.dataset.price);
  const price = Number(quote.price);
  let up;
  if (previous !== null && price !== previous) up = price > previous;
  else up = Number(quote.change) >= 0;
  row.dataset.price = String(price);
  const cells = {
    price: krw(price),
    change: changeText(quote.change),
    change_rate: pctSigned(quote.change_rate),
    volume: krw(quote.cum_volume ?? quote.volume),
  };
  for (const [field, text] of Object.entries(cells)) {
    const cell = row.querySelector(`[data-field="${field}"]`);
    if (!cell) continue;
    cell.textContent = text;
    if (field !== "volume") setDirectionClass(cell, quote.change);
    flash(cell, up);
  }
}

startStatusBar();
if (rows.size) {
  watchMarket([...rows.keys()], { onQuote: updateRow, onStatus: setFeedStatus });
}
