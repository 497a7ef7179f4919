// Portfolio analytics: the equity curve (rebased to 100) against the benchmark, and the drawdown curve, drawn
// with lightweight-charts from the series the server rendered into #analytics-series (no extra request).
import { gettext } from "./i18n.js";
const dataNode = document.getElementById("analytics-series");

function draw() {
  const LC = window.LightweightCharts;
  const equityBox = document.getElementById("equity-chart");
  const drawdownBox = document.getElementById("drawdown-chart");
  if (!LC || !dataNode || !equityBox || !drawdownBox) return false;
  const series = JSON.parse(dataNode.textContent || "[]");
  const options = {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1b1f24" },
    grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
    localization: { locale: "ko-KR" },
  };
  let wealth = 1;
  const equity = [];
  const benchmark = [];
  const drawdown = [];
  for (const point of series) {
    wealth *= 1 + Number(point.return || 0);
    equity.push({ time: point.date, value: Math.round(wealth * 10000) / 100 });
    if (point.benchmark != null) benchmark.push({ time: point.date, value: Number(point.benchmark) });
    drawdown.push({ time: point.date, value: Math.round(Number(point.drawdown || 0) * 10000) / 100 });
  }
  const top = LC.createChart(equityBox, options);
  const line = top.addSeries(LC.LineSeries, { color: "#1f6feb", lineWidth: 2, title: gettext("Account") });
  line.setData(equity);
  if (benchmark.length) {
    top.addSeries(LC.LineSeries, { color: "#8b949e", lineWidth: 1, title: gettext("Benchmark") }).setData(benchmark);
  }
  top.timeScale().fitContent();
  const bottom = LC.createChart(drawdownBox, options);
  bottom.addSeries(LC.AreaSeries, {
    lineColor: "#d1242f", topColor: "rgba(209,36,47,0.05)", bottomColor: "rgba(209,36,47,0.35)", title: gettext("Drawdown %"),
  }).setData(drawdown);
  bottom.timeScale().fitContent();
  equityBox.dataset.points = String(equity.length);
  equityBox.dataset.rendered = "1";
  return true;
}

// the vendor script is deferred: wait for it when this module runs first
if (!draw()) window.addEventListener("load", draw, { once: true });
