// The task page's live parts: appends the log lines of GET /api/tasks/{id}/events (the
// session cookie authorizes it), updates status and progress, refreshes the run tree when
// runs start or end, and reloads once the task has ended so that the results show. Plain
// script, no build step.
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log || log.dataset.live !== "yes" || !window.EventSource) {
    return;
  }
  var url = "/api/tasks/" + encodeURIComponent(log.dataset.task) + "/events?after=" +
    encodeURIComponent(log.dataset.after);
  var source = new EventSource(url);
  var status = document.getElementById("status");
  var progress = document.getElementById("progress");
  var runs = document.getElementById("runs");
  var fetching = false;
  var stale = false;

  // The run tree is server-rendered: fetch it again when runs start or end, one fetch at
  // a time (a change seen meanwhile fetches once more afterwards).
  function refreshRuns() {
    if (fetching) {
      stale = true;
      return;
    }
    fetching = true;
    fetch(runs.dataset.src, {credentials: "same-origin"}).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (html !== null) {
        runs.innerHTML = html;
      }
    }).catch(function () {}).then(function () {
      fetching = false;
      if (stale) {
        stale = false;
        refreshRuns();
      }
    });
  }

  source.addEventListener("status", function (event) {
    var data = JSON.parse(event.data);
    status.textContent = data.status;
    status.className = "status " + data.status;
    progress.value = data.progress;
  });
  source.addEventListener("runs", function () {
    if (runs) {
      refreshRuns();
    }
  });
  source.addEventListener("log", function (event) {
    var row = JSON.parse(event.data);
    var line = document.createElement("span");
    line.className = row.stream;
    line.textContent = row.text;  // text, never HTML: log lines are the tool's output
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(line);
    log.appendChild(document.createTextNode("\n"));
    if (atBottom) {
      log.scrollTop = log.scrollHeight;
    }
  });
  source.addEventListener("end", function () {
    source.close();
    window.location.reload();
  });
})();
