// The phase bar of every signed-in page (#phase-bar): each venue's phase (KRX, NXT), what follows and a countdown
// to it. The market clock advances locally at the replay speed between polls of /market/status.json; when a
// countdown reaches zero the bar asks again at once, so a phase change shows within a second or two. Every
// answer is also dispatched as a "hoga:market-status" event (the pages' status bars and order tickets listen).
import { gettext } from "./i18n.js";

const POLL_MS = 10000;
const BOUNDARY_RETRY_MS = 1000; // after a countdown ran out: ask again this often until the phase changed

export function countdown(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

function lineElement(phase) {
  const line = document.createElement("span");
  line.className = "phase-line";
  line.dataset.venue = phase.venue;
  const venue = document.createElement("abbr");
  venue.className = "venue";
  venue.title = phase.venue_label;
  venue.textContent = phase.venue;
  const label = document.createElement("strong");
  label.dataset.field = "label";
  const next = document.createElement("span");
  next.className = "next";
  next.innerHTML =
    '→ <span data-field="next"></span> <span class="sr-only"></span> <time data-field="countdown"></time>';
  next.querySelector(".sr-only").textContent = gettext("Time left");
  line.append(venue, " ", label, next);
  return line;
}

function startPhaseBar() {
  const bar = document.getElementById("phase-bar");
  if (!bar) return;
  let base = bar.dataset.now ? new Date(bar.dataset.now) : null;
  let baseAt = performance.now();
  let speed = Number(bar.dataset.speed) || 1;
  let available = bar.dataset.available !== "false";
  let lastBoundaryPoll = 0;

  const marketNow = () => (base ? new Date(base.getTime() + (available ? (performance.now() - baseAt) * speed : 0)) : null);

  const tick = () => {
    const now = marketNow();
    let ranOut = false;
    for (const line of bar.querySelectorAll(".phase-line[data-venue]")) {
      const clock = line.querySelector('[data-field="countdown"]');
      if (!clock || !line.dataset.until || !now) continue;
      const left = (Date.parse(line.dataset.until) - now.getTime()) / 1000;
      clock.textContent = countdown(left);
      clock.setAttribute("datetime", `PT${Math.max(0, Math.floor(left))}S`);
      if (left <= 0) ranOut = true;
    }
    if (ranOut && performance.now() - lastBoundaryPoll > BOUNDARY_RETRY_MS) {
      lastBoundaryPoll = performance.now();
      poll();
    }
  };

  const apply = (data) => {
    if (data.now) {
      base = new Date(data.now);
      baseAt = performance.now();
    }
    speed = Number(data.speed) || 1;
    available = Boolean(data.available);
    const phases = Array.isArray(data.phases) ? data.phases : [];
    const seen = new Set();
    for (const phase of phases) {
      seen.add(phase.venue);
      let line = bar.querySelector(`.phase-line[data-venue="${CSS.escape(phase.venue)}"]`);
      if (!line) {
        line = lineElement(phase);
        bar.append(line);
      }
      line.dataset.phase = phase.phase;
      line.dataset.until = phase.until || "";
      line.dataset.accepted = (phase.accepted || []).join(",");
      line.querySelector('[data-field="label"]').textContent = phase.label;
      let also = line.querySelector('[data-field="also"]');
      if (phase.also_labels && phase.also_labels.length) {
        if (!also) {
          also = document.createElement("small");
          also.dataset.field = "also";
          line.querySelector('[data-field="label"]').after(" ", also);
        }
        also.textContent = `+ ${phase.also_labels.join(", ")}`;
      } else if (also) also.remove();
      const next = line.querySelector(".next");
      if (next) {
        next.hidden = !phase.until;
        next.querySelector('[data-field="next"]').textContent = phase.next_label || "";
      }
    }
    for (const line of bar.querySelectorAll(".phase-line")) {
      if (!seen.has(line.dataset.venue) && phases.length) line.remove();
    }
    bar.dataset.phases = phases.map((p) => `${p.venue}:${p.phase}`).join(" ");
    tick();
    document.dispatchEvent(new CustomEvent("hoga:market-status", { detail: data }));
  };

  let busy = false;
  async function poll() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(bar.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok) apply(await response.json());
    } catch {
      /* offline: keep the local clock running */
    } finally {
      busy = false;
    }
  }

  setInterval(tick, 1000);
  setInterval(poll, POLL_MS);
  tick();
}

startPhaseBar();
