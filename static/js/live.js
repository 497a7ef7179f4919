// Plain ES-module WebSocket clients of /ws/market/ and /ws/orders/ with reconnection (exponential backoff
// with jitter, 0.5 s up to 30 s). Market frames are batches of full snapshots, so nothing is replayed after
// a reconnect: the market socket re-subscribes and receives the stored snapshots again; order pages re-fetch.

const BACKOFF_BASE = 500;
const BACKOFF_MAX = 30000;
const PING_EVERY = 25000; // keeps idle proxies from closing the connection

function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export class LiveSocket {
  /**
   * @param {string} path "/ws/market/" or "/ws/orders/"
   * @param {{onMessage: Function, onOpen?: Function, onState?: Function}} handlers
   */
  constructor(path, { onMessage, onOpen = () => {}, onState = () => {} }) {
    this.path = path;
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onState = onState;
    this.failures = 0;
    this.closedByUs = false;
    this.socket = null;
    this.pingTimer = null;
    this.connect();
    window.addEventListener("pagehide", () => this.close());
  }

  connect() {
    this.onState(this.failures ? "reconnecting" : "connecting");
    const socket = new WebSocket(wsUrl(this.path));
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.failures = 0;
      this.onState("open");
      this.onOpen(this);
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: "ping", id: Date.now() }), PING_EVERY);
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(this.pingTimer);
      if (this.closedByUs) return;
      if (event.code === 4401) {
        this.onState("unauthorized");
        return; // logged out: reconnecting cannot help
      }
      this.failures += 1;
      const delay = Math.min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (this.failures - 1));
      this.onState("reconnecting");
      setTimeout(() => this.connect(), delay / 2 + Math.random() * (delay / 2));
    });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  close() {
    this.closedByUs = true;
    clearInterval(this.pingTimer);
    if (this.socket) this.socket.close();
  }
}

const MAX_CODES = 50; // per connection (apps/live/consumers.py MAX_CODES)

/**
 * Live quotes and books of `codes`: one socket per 50 codes. The server sends batch frames (the latest
 * snapshot of every changed stock); handlers get each snapshot object, quotes before books.
 * onStatus receives the feed status ("connected", "reconnecting", "stale", "closed", "stopped", "unknown").
 */
export function watchMarket(codes, { onQuote = () => {}, onBook = () => {}, onStatus = () => {} } = {}) {
  const unique = [...new Set(codes)];
  const chunks = [];
  for (let i = 0; i < unique.length; i += MAX_CODES) chunks.push(unique.slice(i, i + MAX_CODES));
  if (!chunks.length) chunks.push([]);
  return chunks.map(
    (chunk) =>
      new LiveSocket("/ws/market/", {
        onOpen: (live) => {
          if (chunk.length) live.send({ type: "subscribe", codes: chunk });
        },
        onState: (state) => {
          if (state === "reconnecting") onStatus("reconnecting");
        },
        onMessage: (message) => {
          if (message.type === "batch") {
            // One frame holds the latest snapshot of every stock that changed since the previous frame
            // (the server conflates); seq counts this connection's frames from 1 (it restarts on reconnect).
            for (const quote of Object.values(message.quotes || {})) onQuote(quote);
            for (const snapshot of Object.values(message.books || {})) onBook(snapshot);
          } else if (message.type === "status") onStatus(message.status);
        },
      }),
  );
}

/** Live order snapshots of the user's paper accounts; onReconnect lets a page re-fetch what it missed. */
export function watchOrders({ onOrder = () => {}, onReconnect = () => {} } = {}) {
  let opened = 0;
  return new LiveSocket("/ws/orders/", {
    onOpen: () => {
      opened += 1;
      if (opened > 1) onReconnect();
    },
    onMessage: (message) => {
      if (message.type === "order") onOrder(message.order);
    },
  });
}
