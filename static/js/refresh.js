// Throttled refresh of a server-rendered fragment: GET its data-url and swap it in (outerHTML) with htmx
// when it is loaded, else with fetch. At most one request in flight and one per `gap` ms.

export function fragmentRefresher(id, gap = 1000) {
  let timer = null;
  let last = 0;
  let busy = false;

  const run = async () => {
    timer = null;
    const element = document.getElementById(id);
    if (!element || busy) return;
    busy = true;
    last = Date.now();
    try {
      const response = await fetch(element.dataset.url, { headers: { "HX-Request": "true" } });
      if (response.ok) {
        const html = await response.text();
        const current = document.getElementById(id);
        if (current) {
          current.outerHTML = html;
          const fresh = document.getElementById(id);
          if (fresh && window.htmx) window.htmx.process(fresh);
          fresh?.dispatchEvent(new CustomEvent("hoga:refreshed", { bubbles: true }));
        }
      }
    } catch {
      /* offline: the next event retries */
    } finally {
      busy = false;
    }
  };

  return () => {
    if (timer) return;
    timer = setTimeout(run, Math.max(0, gap - (Date.now() - last)));
  };
}
