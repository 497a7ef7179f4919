// The market status bar (#market-status): a clock that advances locally at the replay speed between answers of
// /market/status.json (polled by the phase bar, phases.js, and received here as "hoga:market-status" events), the
// session state, the synthetic-data banner and the feed status.
import { kst } from "./format.js";
import { gettext, pgettext } from "./i18n.js";

const FEED_LABELS = {
  connected: gettext("Connected"),
  reconnecting: gettext("Reconnecting"),
  stale: gettext("Stale"),
  closed: pgettext("feed", "Closed"),
  stopped: gettext("Stopped"),
  unknown: gettext("Unknown"),
};
const BANNER_TEXT = gettext(
  "Synthetic data: the sandbox replays a seeded synthetic market (no recorded KRX data). Prices are not real.",
);

export function setFeedStatus(status) {
  const element = document.getElementById("feed-status");
  if (!element) return;
  const known = status in FEED_LABELS ? status : "unknown";
  element.dataset.status = known;
  element.textContent = FEED_LABELS[known];
}

export function startStatusBar() {
  const bar = document.getElementById("market-status");
  if (!bar) return;
  const clock = document.getElementById("market-clock");
  const session = document.getElementById("session-state");
  let base = bar.dataset.now ? new Date(bar.dataset.now) : null;
  let baseAt = performance.now();
  let speed = Number(bar.dataset.speed) || 1;
  let ticking = bar.dataset.session !== "closed";

  const render = () => {
    if (!base || !clock) return;
    const elapsed = ticking ? (performance.now() - baseAt) * speed : 0;
    const now = new Date(base.getTime() + elapsed);
    clock.textContent = kst(now);
    clock.setAttribute("datetime", now.toISOString());
  };

  const apply = (data) => {
    if (data.now) {
      base = new Date(data.now);
      baseAt = performance.now();
    }
    speed = Number(data.speed) || 1;
    ticking = data.session !== "closed" && data.available;
    if (session) {
      session.textContent = data.session_label;
      session.dataset.session = data.session;
    }
    bar.dataset.session = data.session;
    if (data.feed_status) setFeedStatus(data.feed_status);
    const slot = document.getElementById("synthetic-slot");
    const banner = document.getElementById("synthetic-banner");
    if (data.synthetic && !banner && slot) {
      const div = document.createElement("div");
      div.id = "synthetic-banner";
      div.className = "banner warn";
      div.setAttribute("role", "status");
      div.textContent = BANNER_TEXT;
      slot.appendChild(div);
    } else if (!data.synthetic && banner && data.available) {
      banner.remove();
    }
    render();
  };

  document.addEventListener("hoga:market-status", (event) => apply(event.detail));
  setInterval(render, 1000);
  render();
}
