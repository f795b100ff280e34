// Live updates of a running run's page: poll its JSON every 1.5 s and recolour, in place, the
// run's status, each step's DAG node (its class and status line) and table row. When the run
// ends the polling stops and the note offers a reload for what only the server draws (logs,
// MLflow links, errors); the page is never reloaded by itself.
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var done = ["SUCCEEDED", "FAILED", "KILLED", "STALE"];
  function badge(el, status) {
    if (!el) return;
    el.textContent = status;
    el.className = "st s-" + status;
  }
  function marks(s) {  // the node's second line, as pipelines.run_svg draws it
    var out = [];
    if (s.duration_s !== null && s.duration_s !== undefined) out.push(s.duration_s.toFixed(1) + "s");
    if (s.cached) out.push("cached");
    if (s.retried) out.push("retried x" + (s.attempts - 1));
    return s.status + "  " + out.join(" ");
  }
  function seconds(value) {  // app._duration
    if (value === null || value === undefined) return "";
    if (value < 60) return value.toFixed(1) + "s";
    var rest = Math.floor(value % 60);
    return Math.floor(value / 60) + "m" + (rest < 10 ? "0" : "") + rest + "s";
  }
  function show(run) {
    badge(document.querySelector("#run-status .st"), run.status);
    (run.steps || []).forEach(function (s, i) {
      var node = document.getElementById("step-" + i);
      if (node) {
        node.setAttribute("class", "node step s-" + s.status);
        var lines = node.querySelectorAll("text");
        if (lines.length > 1) lines[1].textContent = marks(s);
      }
      var row = document.querySelector('#steps tr[data-index="' + i + '"]');
      if (row) {
        badge(row.querySelector(".status .st"), s.status);
        var dur = row.querySelector(".dur");
        if (dur) dur.textContent = seconds(s.duration_s);
      }
    });
  }
  function finished(run) {
    live.textContent = "finished (" + run.status + "): ";
    var again = document.createElement("a");
    again.href = location.pathname;
    again.textContent = "reload";
    live.appendChild(again);
    live.appendChild(document.createTextNode(" for its logs, MLflow links and errors"));
  }
  function tick() {
    fetch(live.dataset.url, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (run) {
        show(run);
        if (done.indexOf(run.status) >= 0) finished(run);
        else setTimeout(tick, 1500);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1500);
})();
