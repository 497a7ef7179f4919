// Display formats shared by the pages (the same rules as apps/pages/formatting.py): KRW with thousands
// separators, signed changes with ▲/▼ (red up, blue down), KST times.

const DASH = "—";
const KST_OFFSET_MS = 9 * 3600 * 1000;

export function krw(value) {
  if (value === null || value === undefined || value === "" || Number.isNaN(Number(value))) return DASH;
  return Math.round(Number(value)).toLocaleString("en-US");
}

export function krwSigned(value) {
  if (value === null || value === undefined || value === "" || Number.isNaN(Number(value))) return DASH;
  const n = Math.round(Number(value));
  return n > 0 ? `+${krw(n)}` : krw(n);
}

export function pctSigned(value) {
  if (value === null || value === undefined || value === "" || Number.isNaN(Number(value))) return DASH;
  const n = Number(value);
  const text = `${n.toFixed(2)}%`;
  return n > 0 ? `+${text}` : text;
}

export function direction(value) {
  const n = Number(value);
  if (!n) return "";
  return n > 0 ? "up" : "down";
}

export function changeText(value) {
  if (value === null || value === undefined || value === "" || Number.isNaN(Number(value))) return DASH;
  const n = Number(value);
  if (n === 0) return "0";
  return `${n > 0 ? "▲" : "▼"} ${krw(Math.abs(n))}`;
}

/** Parts of a moment in KST, whatever the browser's time zone. */
export function kstParts(date) {
  const shifted = new Date(date.getTime() + KST_OFFSET_MS);
  const pad = (n) => String(n).padStart(2, "0");
  return {
    date: `${shifted.getUTCFullYear()}-${pad(shifted.getUTCMonth() + 1)}-${pad(shifted.getUTCDate())}`,
    time: `${pad(shifted.getUTCHours())}:${pad(shifted.getUTCMinutes())}:${pad(shifted.getUTCSeconds())}`,
  };
}

export function kst(date) {
  const parts = kstParts(date);
  return `${parts.date} ${parts.time} KST`;
}

export function kstTime(iso) {
  if (!iso) return DASH;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? DASH : kstParts(date).time;
}

/** Remove and re-add a flash class so that every update flashes, even two in a row. */
export function flash(element, up) {
  element.classList.remove("flash-up", "flash-down");
  void element.offsetWidth; // restart
  element.classList.add(up ? "flash-up" : "flash-down");
  clearTimeout(element._flashTimer);
  element._flashTimer = setTimeout(() => element.classList.remove("flash-up", "flash-down"), 700);
}

export function setDirectionClass(element, value) {
  element.classList.remove("up", "down");
  const dir = direction(value);
  if (dir) element.classList.add(dir);
}
