// The stock page's "where do the quotes come from" label: live feed slot, REST polling, or a stored price.
// Asks /api/marketdata/quotes every few seconds (the feed moves a stock between a live slot and the poller as
// demand changes), and says so in words, not colour only.
import { gettext, interpolate } from "./i18n.js";
const POLL_MS = 5000;
const LABELS = {
  ws: gettext("Live quotes"),
  poll: gettext("Quotes polled over REST: no live slot free"),
};

function label(quote) {
  if (!quote) return ["", gettext("No quote yet")];
  if (quote.source in LABELS) return [quote.source, LABELS[quote.source]];
  return ["stored", interpolate(gettext("Stored price, %(as_of)s"), { as_of: quote.as_of })];
}

async function refresh(element) {
  try {
    const response = await fetch(`/api/marketdata/quotes?codes=${encodeURIComponent(element.dataset.code)}`, {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) return;
    const body = await response.json();
    const [source, text] = label((body.quotes || [])[0]);
    const target = document.getElementById("quote-source");
    if (target && target.textContent !== text) {
      target.dataset.source = source;
      target.textContent = text;
    }
  } catch (error) {
    console.warn("quote source unavailable", error);
  }
}

const line = document.getElementById("stock-listing");
if (line) {
  refresh(line);
  setInterval(() => refresh(line), POLL_MS);
}
