/*
 * Toasts for notifications on every page: connects to /ws/notifications/ (session login) and renders each
 * {"type": "notification", "notification": {title, body, level, url}} into #toasts (created when the page
 * has none). Toasts are announced politely to screen readers, can be closed with their button or Escape,
 * and disappear after 8 s unless focused or hovered. Reconnects with backoff; loads once per page.
 */
(function () {
  "use strict";
  if (window.HogaNotifications) return;

  var LIFETIME = 8000;
  var MAX_TOASTS = 5;

  function container() {
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts";
      document.body.appendChild(box);
    }
    if (!box.hasAttribute("role")) box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    box.setAttribute("aria-label", box.getAttribute("aria-label") || gettext("Notifications"));
    return box;
  }

  function show(notification) {
    var box = container();
    var toast = document.createElement("div");
    toast.className = "toast " + (["info", "warning", "summary"].indexOf(notification.level) >= 0 ? notification.level : "");
    var title = document.createElement("strong");
    title.textContent = notification.title || gettext("Notifications");
    toast.appendChild(title);
    if (notification.body) {
      var body = document.createElement("span");
      body.textContent = notification.body;
      toast.appendChild(body);
    }
    if (notification.url && notification.url.charAt(0) === "/" && window.location.pathname !== notification.url) {
      toast.appendChild(document.createTextNode(" "));
      var link = document.createElement("a");
      link.href = notification.url;
      link.textContent = gettext("Show");
      toast.appendChild(link);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", gettext("Close the notification"));
    close.textContent = "×";
    close.addEventListener("click", function () { remove(toast); });
    toast.appendChild(close);
    toast.addEventListener("keydown", function (e) { if (e.key === "Escape") remove(toast); });

    var held = false;
    toast.addEventListener("mouseenter", function () { held = true; });
    toast.addEventListener("mouseleave", function () { held = false; });
    toast.addEventListener("focusin", function () { held = true; });
    toast.addEventListener("focusout", function () { held = false; });
    function expire() { if (held) { setTimeout(expire, 2000); } else { remove(toast); } }
    setTimeout(expire, LIFETIME);

    box.appendChild(toast);
    while (box.children.length > MAX_TOASTS) box.removeChild(box.firstChild);
  }

  function remove(toast) {
    if (toast.parentNode) toast.parentNode.removeChild(toast);
  }

  var attempt = 0;
  var socket = null;
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/notifications/");
    socket.onopen = function () { attempt = 0; container().setAttribute("data-socket", "open"); };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (data && data.type === "notification" && data.notification) show(data.notification);
    };
    socket.onclose = function (event) {
      if (event.code === 4401) return; // not logged in: nothing to receive
      attempt += 1;
      var delay = Math.min(30000, 1000 * Math.pow(2, Math.min(attempt, 5))) * (0.5 + Math.random() / 2);
      setTimeout(connect, delay);
    };
  }

  function start() {
        container();
    connect();
  }

  window.HogaNotifications = { show: show };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
