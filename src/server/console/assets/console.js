// The journey page's live counts (steps, totals, messages): polled every 2 s from
// /journeys/{name}/counts; the graph is fetched again when a count changed. No framework, no build step.
(function () {
  "use strict";
  var totals = document.querySelector("[data-counts]");
  if (!totals) { return; }
  var url = totals.getAttribute("data-counts");
  var figure = document.querySelector("[data-graph]");
  var status = document.getElementById("refreshed");
  var last = "";
  function set(el, v) { if (el && el.textContent !== String(v)) { el.textContent = String(v); } }
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (c) {
        ["entered", "active", "converted", "exited", "completed"].forEach(function (k) {
          set(totals.querySelector('[data-total="' + k + '"]'), c[k]);
        });
        var rows = document.querySelectorAll("#steps tr[data-step]");
        c.steps.forEach(function (s, i) {
          var row = rows[i];
          if (!row || row.getAttribute("data-step") !== s.step) { return; }
          set(row.querySelector('[data-k="waiting"]'), s.waiting);
          set(row.querySelector('[data-k="entered"]'), s.entered);
          set(row.querySelector('[data-k="exited"]'), s.exited);
        });
        document.querySelectorAll("#messages tr[data-message]").forEach(function (row) {
          var m = c.messages[row.getAttribute("data-message")];
          if (!m) { return; }
          ["sent", "delivered", "opened", "clicked", "bounced", "suppressed"].forEach(function (k) {
            set(row.querySelector('[data-k="' + k + '"]'), m[k]);
          });
        });
        var now = JSON.stringify(c);
        if (now !== last && last !== "" && figure) {
          fetch(figure.getAttribute("data-graph"), { credentials: "same-origin" })
            .then(function (r) { return r.ok ? r.text() : null; })
            .then(function (svg) {
              if (svg === null) { return; }
              var doc = new DOMParser().parseFromString(svg, "image/svg+xml");
              var el = doc.documentElement;
              if (el && el.nodeName === "svg") { figure.replaceChildren(document.importNode(el, true)); }
            });
        }
        last = now;
        if (status) { status.textContent = "Counts as of " + new Date().toLocaleTimeString(); }
      })
      .catch(function () { if (status) { status.textContent = "Counts could not be refreshed."; } });
  }
  setInterval(refresh, 2000);
  refresh();
})();
