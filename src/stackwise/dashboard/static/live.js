// Live updates of a running run's page: poll its JSON, recolour the steps, reload when done.
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var done = ["SUCCEEDED", "FAILED", "KILLED", "STALE"];
  function tick() {
    fetch(live.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (run) {
        (run.steps || []).forEach(function (s, i) {
          var node = document.getElementById("step-" + i);
          if (node) node.setAttribute("class", "node step s-" + s.status);
          var row = document.querySelector('#steps tr[data-index="' + i + '"]');
          if (row) {
            var cell = row.querySelector(".status .st");
            cell.textContent = s.status;
            cell.className = "st s-" + s.status;
          }
        });
        if (done.indexOf(run.status) >= 0) location.reload();
        else setTimeout(tick, 1500);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1500);
})();
