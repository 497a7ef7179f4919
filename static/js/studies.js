// Chart studies on the stock page: moving averages, Bollinger bands and the volume average over the price chart,
// RSI and MACD in panes of their own. The server computes them (/api/marketdata/studies) from the very bars the
// chart shows; the choice is remembered per user (/api/marketdata/chart-studies). Redrawn whenever the chart
// loads its bars (another interval) and once a minute.
const box = document.getElementById("chart");
const panel = document.getElementById("chart-studies");
const COLORS = { ma5: "#e65100", ma20: "#2e7d32", ma60: "#6a1b9a", ma120: "#795548", bb: "#546e7a", vma20: "#00838f" };
const REFRESH_MS = 60000;
let drawn = [];
let current = null;

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function chosen() {
  return [...panel.querySelectorAll("input[name=study]:checked")].map((input) => input.value);
}

function range(interval) {
  const day = box.dataset.date;
  const shift = (days) => {
    const t = new Date(`${day}T00:00:00Z`);
    t.setUTCDate(t.getUTCDate() + days);
    return t.toISOString().slice(0, 10);
  };
  return { from: interval === "1d" ? shift(-365) : shift(interval === "1m" ? -2 : -6), to: day };
}

function points(times, values, interval, shift) {
  const out = [];
  values.forEach((value, i) => {
    if (value === null || value === undefined) return;
    const t = interval === "1d" ? Date.parse(`${times[i]}T00:00:00+09:00`) / 1000 : Date.parse(times[i]) / 1000;
    out.push({ time: t + shift, value });
  });
  return out;
}

function clear(chart) {
  for (const series of drawn) {
    try {
      chart.removeSeries(series);
    } catch (error) {
      console.warn("study series already gone", error);
    }
  }
  drawn = [];
  // remove the now empty panes (RSI, MACD), keeping the price pane
  const panes = chart.panes ? chart.panes() : [];
  for (let i = panes.length - 1; i >= 1; i -= 1) {
    try {
      if (!panes[i].getSeries().length) chart.removePane(i);
    } catch (error) {
      console.warn("pane already removed", error); // lightweight-charts may drop an emptied pane by itself
    }
  }
}

async function draw(interval) {
  const hoga = box?.hogaChart;
  if (!hoga) return;
  current = interval;
  const names = chosen();
  const { chart, LC, shift } = hoga;
  if (!names.length) {
    clear(chart);
    panel.dataset.drawn = "";
    return;
  }
  const params = new URLSearchParams({ code: box.dataset.code, interval, ...range(interval), studies: names.join(",") });
  const response = await fetch(`${panel.dataset.url}?${params}`, { headers: { Accept: "application/json" } });
  if (!response.ok || current !== interval) return;
  const body = await response.json();
  clear(chart);
  const line = (values, options, pane = 0) => {
    const series = chart.addSeries(LC.LineSeries, { lineWidth: 1, priceLineVisible: false, lastValueVisible: false, ...options }, pane);
    series.setData(points(body.time, values, interval, shift));
    drawn.push(series);
    return series;
  };
  let pane = 1;
  for (const name of names) {
    const values = body.studies[name];
    if (name.startsWith("ma")) line(values, { color: COLORS[name], title: name.toUpperCase() });
    else if (name === "bb") {
      for (const band of ["upper", "middle", "lower"]) line(values[band], { color: COLORS.bb, lineStyle: band === "middle" ? 0 : 2, title: band === "middle" ? "BB" : "" });
    } else if (name === "vma20") line(values, { color: COLORS.vma20, priceScaleId: "", title: "VMA20" });
    else if (name === "rsi") {
      const rsi = line(values, { color: "#6a1b9a", title: "RSI 14" }, pane);
      rsi.createPriceLine({ price: 70, color: "#c62828", lineStyle: 2, lineWidth: 1, axisLabelVisible: true });
      rsi.createPriceLine({ price: 30, color: "#1565c0", lineStyle: 2, lineWidth: 1, axisLabelVisible: true });
      pane += 1;
    } else if (name === "macd") {
      const hist = chart.addSeries(LC.HistogramSeries, { priceLineVisible: false, lastValueVisible: false }, pane);
      hist.setData(points(body.time, values.hist, interval, shift).map((p) => ({ ...p, color: p.value >= 0 ? "#ef9a9a" : "#90caf9" })));
      drawn.push(hist);
      line(values.macd, { color: "#1b5e20", title: "MACD" }, pane);
      line(values.signal, { color: "#e65100", title: "signal" }, pane);
      pane += 1;
    }
  }
  panel.dataset.drawn = names.join(",");
}

async function save() {
  await fetch(panel.dataset.saveUrl, {
    method: "PUT",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ studies: chosen() }),
  });
}

if (box && panel) {
  box.addEventListener("chart:loaded", (event) => draw(event.detail.interval));
  panel.addEventListener("change", () => {
    save();
    if (current) draw(current);
  });
  setInterval(() => current && draw(current), REFRESH_MS);
}
