/*
 * Live updates of the /conditions/ page: connects to /ws/conditions/ and, for each
 * {"type": "condition.event", condition, event, members}, redraws that condition's member table from the
 * full member snapshot and prepends the event to the event log. Without JavaScript the page is complete
 * on every reload; every form here posts normally.
 */
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var pgettext = window.pgettext || function (context, text) { return text; };
  var root = document.getElementById("conditions-root");
  if (!root) return;
  var orderUrl = root.getAttribute("data-order-url");
  var quantity = root.getAttribute("data-order-quantity") || "1";
  var hasAccount = root.getAttribute("data-has-account") === "1";

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function kst(iso) {
    // Snapshots carry +09:00 times: the first 19 characters are the KST wall time.
    return iso ? iso.slice(0, 19).replace("T", " ") : "";
  }

  function won(value) {
    return value ? (document.documentElement.lang === "en" ? "₩" + Number(value).toLocaleString("en-US") : Number(value).toLocaleString("ko-KR") + "원") : "-";
  }

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    if (text !== undefined && text !== null) td.textContent = text;
    return td;
  }

  function stockCell(name, code) {
    var td = cell(name || code);
    var hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = " " + code;
    td.appendChild(hint);
    return td;
  }

  function orderForm(eventId, code, idPrefix) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = orderUrl;
    form.className = "inline";
    var token = document.createElement("input");
    token.type = "hidden"; token.name = "csrfmiddlewaretoken"; token.value = csrfToken();
    var ev = document.createElement("input");
    ev.type = "hidden"; ev.name = "event"; ev.value = eventId;
    var id = idPrefix + eventId;
    var label = document.createElement("label");
    label.htmlFor = id; label.className = "sr-only"; label.textContent = code + " " + gettext("buy quantity");
    var qty = document.createElement("input");
    qty.type = "number"; qty.id = id; qty.name = "quantity"; qty.min = "1"; qty.step = "1"; qty.value = quantity;
    qty.required = true;
    var button = document.createElement("button");
    button.type = "submit"; button.textContent = gettext("Market buy");
    [token, ev, label, qty, button].forEach(function (el) { form.appendChild(el); });
    return form;
  }

  function drawMembers(conditionId, members) {
    var body = root.querySelector("tbody[data-members='" + conditionId + "']");
    if (!body) return;
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!members.length) {
      var empty = document.createElement("tr");
      empty.className = "empty";
      var td = cell(gettext("No members"));
      td.colSpan = 4;
      empty.appendChild(td);
      body.appendChild(empty);
      return;
    }
    members.forEach(function (m) {
      var tr = document.createElement("tr");
      tr.appendChild(stockCell(m.name, m.code));
      tr.appendChild(cell(kst(m.since)));
      tr.appendChild(cell(won(m.price_in), "num"));
      var action = cell("");
      if (m.event && hasAccount) action.appendChild(orderForm(m.event, m.code, "qty-lm-"));
      tr.appendChild(action);
      body.appendChild(tr);
    });
  }

  function addEvent(event) {
    var body = document.getElementById("condition-events");
    if (!body || !event) return;
    var empty = body.querySelector("tr.empty");
    if (empty) body.removeChild(empty);
    var section = root.querySelector("section[data-condition='" + event.condition + "'] h2");
    var conditionName = section ? section.textContent.replace(/\s+/g, " ").trim() : String(event.condition);
    var tr = document.createElement("tr");
    tr.appendChild(cell(event.kind === "IN" ? gettext("Entered") : gettext("Exited"), "kind-" + event.kind));
    tr.appendChild(cell(kst(event.at)));
    tr.appendChild(stockCell(event.name, event.code));
    tr.appendChild(cell(won(event.price), "num"));
    tr.appendChild(cell(event.source === "realtime" ? pgettext("source", "Real-time") : gettext("Polled")));
    tr.appendChild(cell(conditionName));
    var action = cell("");
    if (event.kind === "IN" && hasAccount) action.appendChild(orderForm(event.id, event.code, "qty-le-"));
    tr.appendChild(action);
    body.insertBefore(tr, body.firstChild);
  }

  var attempt = 0;
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/conditions/");
    socket.onopen = function () { attempt = 0; };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (!data || data.type !== "condition.event") return;
      drawMembers(data.condition, data.members || []);
      addEvent(data.event);
    };
    socket.onclose = function (event) {
      if (event.code === 4401) return;
      attempt += 1;
      setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, Math.min(attempt, 5))) * (0.5 + Math.random() / 2));
    };
  }
  connect();
})();
