// backout web UI: follows a run live. The page's live part is rendered by the server; on each
// journal event of the run (server-sent events) this fetches it again and swaps it in. No
// inline scripts anywhere (the Content-Security-Policy forbids them).
(function () {
  "use strict";
  var root = document.querySelector("[data-live-run]");
  if (!root || !window.EventSource) { return; }
  var run = encodeURIComponent(root.getAttribute("data-live-run"));
  var live = document.getElementById("live");
  var busy = false;
  var again = false;
  function say(text) { if (live) { live.textContent = text; } }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    // Keep open output blocks open across the swap.
    var open = Array.prototype.map.call(root.querySelectorAll("details[open]"), function (d) { return d.id; });
    fetch("/ui/runs/" + run + "/steps", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (html) {
        root.innerHTML = html;
        open.forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
        if (window.htmx) { window.htmx.process(root); }
      })
      .catch(function (error) { say("could not refresh (" + error.message + "); reload the page"); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  var source = new EventSource("/ui/runs/" + run + "/events");
  source.addEventListener("open", function () { say("live"); });
  source.addEventListener("journal", refresh);
  source.addEventListener("resync", refresh);
  source.addEventListener("end", function () {
    source.close();
    say("ended");
    refresh();
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) { say("disconnected; reload the page"); }
    else { say("reconnecting…"); }
  });
})();
