// Stock page: candlestick chart (lightweight-charts, served from static/vendor/) that extends live from
// ticks, the 10-level order book with depth bars, the trades tape with each print's phase, the halted / VI badges
// and the expected auction price, and the order ticket (price steppers; which order types the phase takes).
import { changeText, flash, krw, kstParts, kstTime, pctSigned, setDirectionClass } from "./format.js";
import { watchMarket, watchOrders } from "./live.js";
import { flagsOf, phaseLabel, renderBadges } from "./marketday.js";
import { setFeedStatus, startStatusBar } from "./status.js";
import { gettext, statusLabel } from "./i18n.js";

const KST_SECONDS = 9 * 3600; // the chart draws UTC: shift by +9 h so its axis reads KST
const MINUTES = { "1m": 1, "5m": 5, "15m": 15, "60m": 60 };
const TRADES_KEPT = 50;
const UP = "#c62828";
const DOWN = "#1565c0";

const chartBox = document.getElementById("chart");
const code = chartBox ? chartBox.dataset.code : document.getElementById("orderbook")?.dataset.code;

// --- chart ---------------------------------------------------------------------------------------------

const chartState = { interval: "1m", bars: [], loaded: false, lastCum: null, pending: [], series: null, volume: null };

function kstMidnight(isoDate) {
  return Date.parse(`${isoDate}T00:00:00+09:00`) / 1000;
}

function shiftDays(isoDate, days) {
  const t = new Date(`${isoDate}T00:00:00Z`);
  t.setUTCDate(t.getUTCDate() + days);
  return t.toISOString().slice(0, 10);
}

function bucketOf(unixSeconds, interval) {
  if (interval === "1d") return kstMidnight(kstParts(new Date(unixSeconds * 1000)).date);
  const size = MINUTES[interval] * 60; // KST is a whole-hour offset: UTC alignment is the session's alignment
  return Math.floor(unixSeconds / size) * size;
}

function publishChartState() {
  const last = chartState.bars[chartState.bars.length - 1];
  chartBox.dataset.bars = String(chartState.bars.length);
  chartBox.dataset.lastTime = last ? String(last.time) : "";
  chartBox.dataset.interval = chartState.interval;
}

function draw(bar) {
  const time = bar.time + KST_SECONDS;
  try {
    chartState.series?.update({ time, open: bar.open, high: bar.high, low: bar.low, close: bar.close });
    chartState.volume?.update({ time, value: bar.volume, color: bar.close >= bar.open ? "#ef9a9a" : "#90caf9" });
  } catch (error) {
    console.warn("chart update skipped", error); // the bar list stays right; the next setData redraws it
  }
}

function drawAll() {
  if (!chartState.series) return;
  chartState.series.setData(
    chartState.bars.map((b) => ({ time: b.time + KST_SECONDS, open: b.open, high: b.high, low: b.low, close: b.close })),
  );
  chartState.volume.setData(
    chartState.bars.map((b) => ({
      time: b.time + KST_SECONDS,
      value: b.volume,
      color: b.close >= b.open ? "#ef9a9a" : "#90caf9",
    })),
  );
}

async function fetchBars(interval, source) {
  const day = chartBox.dataset.date;
  const from = interval === "1d" ? shiftDays(day, -365) : shiftDays(day, interval === "1m" ? -2 : -6);
  const params = new URLSearchParams({ code, interval, from, to: day });
  if (source) params.set("source", source);
  const response = await fetch(`${chartBox.dataset.barsUrl}?${params}`, { headers: { Accept: "application/json" } });
  if (!response.ok) return [];
  return response.json();
}

// Bars of different phases can share a minute (09:00: the opening print and the first continuous trades; the API
// sends them in time order, the auction first). The chart draws one candle per time: they are combined.
function mergeSameTime(bars) {
  const out = [];
  for (const bar of bars) {
    const last = out[out.length - 1];
    if (last && last.time === bar.time) {
      last.high = Math.max(last.high, bar.high);
      last.low = Math.min(last.low, bar.low);
      last.close = bar.close;
      last.volume += bar.volume;
    } else out.push({ ...bar });
  }
  return out;
}

async function loadBars(interval) {
  chartState.interval = interval;
  chartState.loaded = false;
  chartState.lastCum = null;
  let rows = await fetchBars(interval);
  if (!rows.length && interval !== "1d") rows = await fetchBars(interval, "ws"); // minutes built from live ticks
  if (chartState.interval !== interval) return; // another interval was chosen meanwhile
  chartState.bars = mergeSameTime(
    rows.map((row) => ({
      time: interval === "1d" ? kstMidnight(row.time) : Date.parse(row.time) / 1000,
      open: row.open,
      high: row.high,
      low: row.low,
      close: row.close,
      volume: row.volume,
    })),
  );
  drawAll();
  chartState.loaded = true;
  publishChartState();
  chartBox.dispatchEvent(new CustomEvent("chart:loaded", { detail: { interval } }));
  const waiting = chartState.pending.splice(0);
  for (const quote of waiting) extendChart(quote);
}

function extendChart(quote) {
  if (!chartBox) return;
  if (!chartState.loaded) {
    chartState.pending.push(quote);
    if (chartState.pending.length > 500) chartState.pending.shift();
    return;
  }
  const at = Date.parse(quote.time) / 1000;
  if (!Number.isFinite(at)) return;
  const bucket = bucketOf(at, chartState.interval);
  const price = Number(quote.price);
  const cum = Number(quote.cum_volume);
  const delta = chartState.lastCum !== null && cum >= chartState.lastCum ? cum - chartState.lastCum : null;
  chartState.lastCum = Number.isFinite(cum) ? cum : null;
  const last = chartState.bars[chartState.bars.length - 1];
  if (!last || bucket > last.time) {
    const bar = {
      time: bucket,
      open: price,
      high: price,
      low: price,
      close: price,
      volume: chartState.interval === "1d" ? cum : delta ?? Number(quote.volume) ?? 0,
    };
    chartState.bars.push(bar);
    draw(bar);
  } else if (bucket === last.time) {
    last.high = Math.max(last.high, price);
    last.low = Math.min(last.low, price);
    last.close = price;
    if (chartState.interval === "1d") last.volume = Math.max(last.volume, cum || 0);
    else if (delta !== null) last.volume += delta;
    draw(last);
  } else {
    return; // older than the last bar drawn (a stored snapshot): nothing to extend
  }
  publishChartState();
}

function setupChart() {
  if (!chartBox || !window.LightweightCharts) return;
  const LC = window.LightweightCharts;
  const chart = LC.createChart(chartBox, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1b1f24" },
    grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    localization: { locale: "ko-KR", priceFormatter: (p) => krw(p) },
  });
  // lightweight-charts v5: series are added with addSeries(<definition>, options).
  chartState.series = chart.addSeries(LC.CandlestickSeries, {
    upColor: UP,
    downColor: DOWN,
    borderUpColor: UP,
    borderDownColor: DOWN,
    wickUpColor: UP,
    wickDownColor: DOWN,
    priceFormat: { type: "price", precision: 0, minMove: 1 },
  });
  chartState.volume = chart.addSeries(LC.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "" });
  chartState.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  chartBox.hogaChart = { chart, LC, shift: KST_SECONDS }; // for the studies (static/js/studies.js)
  for (const button of document.querySelectorAll("button[data-interval]")) {
    button.addEventListener("click", () => {
      for (const other of document.querySelectorAll("button[data-interval]")) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      }
      loadBars(button.dataset.interval);
    });
  }
  loadBars("1m");
}

// --- quote, trades, book --------------------------------------------------------------------------------

const lastPrice = document.getElementById("last-price");
const trades = document.getElementById("trades");
let lastTradeKey = null;
let lastCum = null;

function showMarketDay(quote) {
  const flags = flagsOf(quote);
  renderBadges(document.querySelector(".stock-head [data-badges]"), quote);
  const expected = document.getElementById("expected");
  if (expected) {
    expected.hidden = flags.expectedPrice === null;
    expected.dataset.price = flags.expectedPrice === null ? "" : String(flags.expectedPrice);
    document.getElementById("expected-price").textContent = krw(flags.expectedPrice);
    document.getElementById("expected-quantity").textContent = krw(flags.expectedQuantity);
  }
  const phase = document.getElementById("last-phase");
  if (phase) {
    phase.dataset.phase = flags.phase || "";
    const label = flags.phase ? phaseLabel(flags.phase, flags.venue) : "";
    phase.textContent = label && flags.venue ? `${label} · ${flags.venue}` : label;
  }
  return flags;
}

function onQuote(quote) {
  if (book && quote.price != null && quote.change != null) book.dataset.base = String(quote.price - quote.change);
  if (quote.code !== code) return;
  const flags = showMarketDay(quote);
  const price = Number(quote.price);
  if (lastPrice) {
    const previous = Number(lastPrice.dataset.price);
    lastPrice.dataset.price = String(price);
    lastPrice.textContent = krw(price);
    setDirectionClass(lastPrice, quote.change);
    flash(lastPrice, previous && price !== previous ? price > previous : Number(quote.change) >= 0);
  }
  const change = document.getElementById("last-change");
  if (change) {
    change.textContent = `${changeText(quote.change)} (${pctSigned(quote.change_rate)})`;
    setDirectionClass(change, quote.change);
  }
  const volume = document.getElementById("last-volume");
  if (volume) volume.textContent = krw(quote.cum_volume);
  // Snapshots that bring no new print (the cumulative volume stands still: an expected price while a call
  // auction's book builds, a VI or halt starting or ending) redraw the state above, not the tape or the chart.
  const cum = String(quote.cum_volume);
  const printed = lastCum === null || cum !== lastCum;
  lastCum = cum;
  if (!printed) return;
  const key = `${quote.time}|${quote.cum_volume}`;
  if (trades && key !== lastTradeKey) {
    lastTradeKey = key;
    const row = document.createElement("tr");
    row.setAttribute("data-trade", "");
    row.dataset.price = String(price);
    const side = quote.side === 1 ? "up" : quote.side === 5 ? "down" : "";
    row.innerHTML = `<td>${kstTime(quote.time)}</td><td class="num ${side}">${krw(price)}</td><td class="num ${side}">${krw(quote.volume)}</td><td class="phase-tag"></td>`;
    const phaseCell = row.lastElementChild;
    phaseCell.dataset.phase = flags.phase || "";
    phaseCell.textContent = flags.phase && flags.phase !== "continuous" ? phaseLabel(flags.phase, flags.venue) : "";
    trades.prepend(row);
    while (trades.children.length > TRADES_KEPT) trades.lastElementChild.remove();
  }
  extendChart(quote);
}

const book = document.getElementById("orderbook");

function setLevel(side, level, price, qty, biggest) {
  const row = book.querySelector(`tr[data-side="${side}"][data-level="${level}"]`);
  if (!row) return;
  const priceCell = row.querySelector('[data-field="price"]');
  const qtyCell = row.querySelector('[data-field="qty"]');
  const priceText = price ? krw(price) : "—";
  if (priceCell.textContent !== priceText) {
    // Level prices keep their colour against the base (no flash): only the quantities flash.
    priceCell.textContent = priceText;
    priceCell.dataset.value = String(price || 0);
  }
  // Korean order books colour a level against the previous close (기준가): red above, blue below.
  const base = Number(book.dataset.base || 0);
  priceCell.classList.toggle("up", Boolean(price && base && price > base));
  priceCell.classList.toggle("down", Boolean(price && base && price < base));
  const value = qtyCell.querySelector(".v");
  const qtyText = price ? krw(qty) : "—";
  if (value.textContent !== qtyText) {
    const before = Number(qtyCell.dataset.value || 0);
    value.textContent = qtyText;
    qtyCell.dataset.value = String(qty || 0);
    flash(qtyCell, qty >= before);
  }
  const bar = qtyCell.querySelector(".depth");
  bar.style.width = `${biggest && qty ? Math.min(100, Math.round((qty * 100) / biggest)) : 0}%`;
}

function onBook(snapshot) {
  if (!book || snapshot.code !== code) return;
  const asks = snapshot.asks || [];
  const bids = snapshot.bids || [];
  const biggest = Math.max(0, ...asks.map((l) => l[1]), ...bids.map((l) => l[1]));
  for (let i = 0; i < 10; i += 1) {
    const [askPrice, askQty] = asks[i] || [0, 0];
    const [bidPrice, bidQty] = bids[i] || [0, 0];
    setLevel("ask", i + 1, askPrice, askQty, biggest);
    setLevel("bid", i + 1, bidPrice, bidQty, biggest);
  }
  const totalAsk = document.getElementById("total-ask");
  const totalBid = document.getElementById("total-bid");
  if (totalAsk) totalAsk.textContent = krw(snapshot.total_ask_qty);
  if (totalBid) totalBid.textContent = krw(snapshot.total_bid_qty);
  const time = document.getElementById("book-time");
  if (time) time.textContent = kstTime(snapshot.time);
  book.dataset.updated = String(Number(book.dataset.updated || 0) + 1);
}

// --- order ticket (event delegation: htmx replaces the form after each submission) ------------------------

function tickSize(price, bands) {
  for (const [bound, tick] of bands) if (bound === null || price < bound) return tick;
  return 1;
}

function stepPrice(price, direction, bands) {
  if (direction === "up") {
    const tick = tickSize(price, bands);
    const floor = price - (price % tick);
    return floor === price ? price + tick : floor + tick;
  }
  if (price <= 1) return 1;
  const below = price - 1;
  return below - (below % tickSize(below, bands));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("#order-ticket button[data-step]");
  if (!button) return;
  const form = button.closest("form");
  const input = form.querySelector('input[name="price"]');
  if (input.disabled) return;
  const bands = JSON.parse(form.dataset.ticks || "[]");
  const lower = Number(form.dataset.lower) || 1;
  const upper = Number(form.dataset.upper) || Infinity;
  let price = Number(input.value) || Number(lastPrice?.dataset.price) || lower;
  price = stepPrice(price, button.dataset.step, bands);
  input.value = String(Math.min(upper, Math.max(lower, price)));
});

const PRICED_TYPES = new Set(["LIMIT", "AFTER_HOURS_SINGLE"]); // apps/pages/forms.py PRICED_TYPES

/** Mark each order type the chosen route takes now, from the phase bar's lines (their data-accepted). */
function markAcceptedKinds() {
  const form = document.getElementById("order-ticket");
  if (!form) return;
  const route = form.querySelector('input[name="route"]:checked')?.value || "KRX";
  const venues = route === "SOR" ? ["KRX", "NXT"] : [route];
  const lines = venues.map((venue) => document.querySelector(`#phase-bar .phase-line[data-venue="${venue}"]`));
  if (lines.some((line) => !line)) return; // phases unknown: keep what the server rendered
  const accepted = new Set(lines.flatMap((line) => (line.dataset.accepted || "").split(",").filter(Boolean)));
  for (const input of form.querySelectorAll('input[name="order_type"]')) {
    const mark = input.closest("label")?.querySelector("[data-accepted-mark]");
    if (!mark) continue;
    const now = accepted.has(input.dataset.kind);
    mark.className = now ? "accepted-now" : "not-now";
    mark.textContent = now ? gettext("Now") : gettext("Not now");
  }
}

document.addEventListener("change", (event) => {
  if (!event.target.closest("#order-ticket")) return;
  if (event.target.name === "order_type") {
    const input = event.target.form.querySelector('input[name="price"]');
    input.disabled = !PRICED_TYPES.has(event.target.value);
  } else if (event.target.name === "route") markAcceptedKinds();
});
document.addEventListener("hoga:market-status", markAcceptedKinds);

// --- live -----------------------------------------------------------------------------------------------

startStatusBar();
setupChart();
if (code) watchMarket([code], { onQuote, onBook, onStatus: setFeedStatus });
watchOrders({
  onOrder: (order) => {
    for (const element of document.querySelectorAll(`[data-order-status][data-order-id="${order.id}"]`)) {
      element.dataset.value = order.status;
      element.textContent = statusLabel(order.status);
    }
  },
});

// The buy/sell bar of narrow screens: one tap picks the side and brings the ticket, its quantity focused.
for (const link of document.querySelectorAll("#ticket-bar a[data-side]")) {
  link.addEventListener("click", (event) => {
    const ticket = document.getElementById("order-ticket");
    if (!ticket) return;
    event.preventDefault();
    const radio = ticket.querySelector(`input[name="side"][value="${link.dataset.side}"]`);
    if (radio) radio.checked = true;
    ticket.scrollIntoView({ block: "start" });
    ticket.querySelector('input[name="quantity"]')?.focus({ preventScroll: true });
  });
}
