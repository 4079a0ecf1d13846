// weir's only script: while a page shows active runs (body[data-live]), refresh its #live part every two seconds
// from the server, keeping a log that was scrolled to its end at its end (a live tail). Pages work without it.
(function () {
  "use strict";
  function atEnd(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  }
  function tailLogs() {
    document.querySelectorAll("pre.log[data-tail]").forEach(function (el) { el.scrollTop = el.scrollHeight; });
  }
  async function refresh() {
    var live = document.getElementById("live");
    if (!live || !document.body.hasAttribute("data-live")) return;
    var following = Array.prototype.map.call(live.querySelectorAll("pre.log"), atEnd);
    try {
      var response = await fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (!response.ok) throw new Error(response.status);
      var doc = new DOMParser().parseFromString(await response.text(), "text/html");
      var fresh = doc.getElementById("live");
      if (fresh) {
        live.innerHTML = fresh.innerHTML;
        live.querySelectorAll("pre.log").forEach(function (el, i) {
          if (following[i] !== false) el.scrollTop = el.scrollHeight;
        });
      }
      if (!doc.body.hasAttribute("data-live")) document.body.removeAttribute("data-live");
    } catch (e) {
      // the daemon restarted or the network blinked: try again on the next tick
    }
    if (document.body.hasAttribute("data-live")) setTimeout(refresh, 2000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    tailLogs();
    if (document.body.hasAttribute("data-live")) setTimeout(refresh, 2000);
  });
})();
