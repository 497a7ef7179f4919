// What the live pages show of the market day for one stock (the same words as apps/pages/market_day.py): the
// halted and VI badges, the phase of its last print, and the expected price of a call auction while its book
// builds. Quote snapshots may carry `halted`, `vi` ({kind, reference, until}), `expected` ({price, quantity}),
// `phase` and `venue` (apps/live/realtime/snapshots.py); a missing or malformed field shows nothing.
import { krw, kstTime } from "./format.js";
import { gettext, won } from "./i18n.js";

export const PHASE_LABELS = {
  closed: gettext("Closed"),
  pre_close_price: gettext("Pre-open closing price"),
  opening_auction: gettext("Opening auction"),
  continuous: gettext("Continuous trading"),
  vi_auction: gettext("VI auction"),
  closing_auction: gettext("Closing auction"),
  post_close_price: gettext("After-hours closing price"),
  after_hours_single: gettext("After-hours single price"),
  nxt_pre: gettext("NXT pre-market"),
  nxt_after: gettext("NXT after-market"),
  halted: gettext("Halted"),
  krx_after_market: gettext("KRX after-market"),
};
const NXT_CONTINUOUS = gettext("NXT main market");
const VI_LABELS = { static: gettext("Static VI"), dynamic: gettext("Dynamic VI") };
const MAX_REASONABLE = 1e13;

export function phaseLabel(phase, venue) {
  if (venue === "NXT" && phase === "continuous") return NXT_CONTINUOUS;
  return Object.hasOwn(PHASE_LABELS, phase) ? PHASE_LABELS[phase] : "";
}

function whole(value) {
  const n = typeof value === "string" && /^\d{1,15}$/.test(value.trim()) ? Number(value) : value;
  return Number.isInteger(n) && n > 0 && n < MAX_REASONABLE ? n : null;
}

/** The flags of a quote snapshot, read defensively (market_day.stock_flags). */
export function flagsOf(quote) {
  const isObject = (value) => typeof value === "object" && value !== null && !Array.isArray(value);
  const vi = quote && isObject(quote.vi) ? quote.vi : null;
  const expected = quote && isObject(quote.expected) ? quote.expected : null;
  const expectedPrice = expected ? whole(expected.price) : null;
  let expectedQuantity = expected && expectedPrice !== null ? whole(expected.quantity) : null;
  if (expectedPrice !== null && expectedQuantity === null && expected.quantity === 0) expectedQuantity = 0;
  const phase = quote && Object.hasOwn(PHASE_LABELS, quote.phase) ? quote.phase : null;
  let viFlags = vi ? { kind: Object.hasOwn(VI_LABELS, vi.kind) ? vi.kind : "", reference: whole(vi.reference), until: vi.until } : null;
  if (!viFlags && phase === "vi_auction") viFlags = { kind: "", reference: null, until: null }; // a VI of unknown kind
  return {
    halted: Boolean(quote) && quote.halted === true,
    vi: viFlags,
    expectedPrice,
    expectedQuantity,
    phase,
    venue: quote && (quote.venue === "KRX" || quote.venue === "NXT") ? quote.venue : null,
  };
}

function badge(kind, text, small, title) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.dataset.badge = kind;
  span.title = title;
  span.append(`${text} `);
  const note = document.createElement("small");
  note.textContent = small;
  span.append(note);
  return span;
}

/** Redraw a `[data-badges]` container (templates/pages/_stock_badges.html) from a quote snapshot. */
export function renderBadges(container, quote) {
  if (!container) return;
  const flags = flagsOf(quote);
  const children = [];
  if (flags.halted) children.push(badge("halted", gettext("Halted"), "", gettext("Halted: cancels only")));
  if (flags.vi) {
    const label = VI_LABELS[flags.vi.kind] || gettext("Volatility interruption");
    let title = `${label}: ${gettext("2-minute single-price auction")}`;
    if (flags.vi.reference) title += ` · ${gettext("Reference price")} ${won(krw(flags.vi.reference))}`;
    if (flags.vi.until && kstTime(flags.vi.until) !== "—") title += ` · ~${kstTime(flags.vi.until)}`;
    const element = badge("vi", "VI", label, title);
    element.dataset.kind = flags.vi.kind;
    children.push(element);
  }
  const key = (c) => `${c.dataset.badge}:${c.dataset.kind || ""}:${c.title}`;
  const before = [...container.children].map(key).join(",");
  const after = children.map(key).join(",");
  if (before !== after) container.replaceChildren(...children);
}
