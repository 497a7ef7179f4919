// Portfolio: balance and positions re-rendered by the server whenever an order changes (/ws/orders/) or a
// held stock trades (/ws/market/), at most once a second.
import { watchMarket, watchOrders } from "./live.js";
import { fragmentRefresher } from "./refresh.js";

const refresh = fragmentRefresher("portfolio-live", 1000);
let sockets = [];
let watched = "";

function watchHoldings() {
  const live = document.getElementById("portfolio-live");
  const codes = live && live.dataset.codes ? live.dataset.codes.split(",").filter(Boolean) : [];
  const key = codes.join(",");
  if (key === watched) return;
  watched = key;
  for (const socket of sockets) socket.close();
  sockets = codes.length ? watchMarket(codes, { onQuote: refresh }) : [];
}

document.addEventListener("hoga:refreshed", watchHoldings);
watchHoldings();
watchOrders({ onOrder: refresh, onReconnect: refresh });
