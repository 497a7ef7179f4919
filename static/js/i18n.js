// The page language's words for what the scripts write (Django's JavaScript catalogue, /i18n/js/, loaded by
// templates/base.html before any module): gettext("English msgid") and interpolate("%(name)s", {name}).
export const gettext = (text) => (window.gettext ? window.gettext(text) : text);
export const pgettext = (context, text) => (window.pgettext ? window.pgettext(context, text) : text);
export const interpolate = (format, values) =>
  window.interpolate ? window.interpolate(format, values, true) : format.replace(/%\((\w+)\)s/g, (_, k) => values[k]);
const STATUS_LABELS = {
  PENDING: gettext("Pending"),
  PARTIALLY_FILLED: gettext("Partially filled"),
  FILLED: gettext("Filled"),
  CANCELLED: gettext("Cancelled"),
  REJECTED: gettext("Rejected"),
  EXPIRED: gettext("Expired"),
};
/** An order status code (PENDING, FILLED ...) in the page language. */
export const statusLabel = (status) => STATUS_LABELS[status] || status;
/** The page language ("ko" or "en"), from <html lang>. */
export const language = () => (document.documentElement.lang || "ko").slice(0, 2);
/** An amount of KRW as the page language writes it: "1,234원" (Korean), "₩1,234" (English). */
export function won(text) {
  if (text === "—") return text;
  if (language() === "ko") return `${text}원`;
  const sign = text.startsWith("-") || text.startsWith("+") ? text[0] : "";
  return `${sign}₩${text.slice(sign.length)}`;
}
