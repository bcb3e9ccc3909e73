// The task page's live log: appends the lines of GET /api/tasks/{id}/events (the session
// cookie authorizes it), updates status and progress, and reloads once the task has ended so
// that runs and results show. Plain script, no build step.
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

  source.addEventListener("status", function (event) {
    var data = JSON.parse(event.data);
    status.textContent = data.status;
    status.className = "status " + data.status;
    progress.value = data.progress;
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
