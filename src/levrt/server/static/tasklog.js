// The task page's live parts. While the task runs: appends the log lines of
// GET /api/tasks/{id}/events (the session cookie authorizes it), keeps the latest lines on the
// first screen, ticks the elapsed time and each running run's duration, counts finished runs,
// moves the progress bar when runs start and end, refreshes the run tree, and reloads once
// the task has ended so that the result shows. Always: a click on a run filters the log to
// it. Plain script, no build step.
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log) {
    return;
  }
  var runs = document.getElementById("runs");
  // The server's own patterns (levrt.server.labels), so both colour lines alike.
  var errorLine = new RegExp(log.dataset.errorPattern || "$^", "i");
  var noteLine = new RegExp(log.dataset.notePattern || "$^");
  var names = JSON.parse(log.dataset.runs || "{}");
  var shownRun = null;

  // -- the log, filtered to one run ------------------------------------------------------
  function showOnly(runId) {
    shownRun = runId;
    var lines = log.querySelectorAll(".line");
    for (var i = 0; i < lines.length; i++) {
      lines[i].hidden = runId !== null && lines[i].dataset.run !== runId;
    }
    var filter = document.getElementById("log-filter");
    filter.hidden = runId === null;
    filter.querySelector("span").textContent = runId === null ? "" : (names[runId] || runId);
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest(".run-link") : null;
    if (link) {
      showOnly(link.dataset.run);
    } else if (event.target.id === "log-all") {
      event.preventDefault();
      showOnly(null);
    }
  });

  if (log.dataset.live !== "yes" || !window.EventSource) {
    return;
  }

  // -- time ticking ----------------------------------------------------------------------
  function duration(started) {
    var seconds = Math.max(0, Math.floor((Date.now() - Date.parse(started)) / 1000));
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor(seconds / 60) % 60;
    var rest = ("0" + (seconds % 60)).slice(-2);
    return hours ? hours + "h" + ("0" + minutes).slice(-2) + "m" + rest + "s"
      : minutes + "m" + rest + "s";
  }
  function tick() {
    var items = document.querySelectorAll("#elapsed, #runs .ticking");
    for (var i = 0; i < items.length; i++) {
      if (items[i].dataset.started && !items[i].dataset.finished) {
        items[i].textContent = duration(items[i].dataset.started);
      }
    }
  }
  setInterval(tick, 1000);

  // -- progress: the workflow's own, or how far its runs are, never backwards -------------
  var status = document.getElementById("status");
  var progress = document.getElementById("progress");
  var count = document.getElementById("run-count");
  var jobProgress = Number(progress.dataset.progress || 0);
  function showProgress() {
    var total = Number(count.dataset.total), finished = Number(count.dataset.finished);
    // A run that started counts half; one more run may always come.
    var estimate = (finished + (total - finished) / 2) / (total + 1);
    progress.value = Math.max(progress.value, jobProgress, estimate);
    count.textContent = finished + " of " + total + " run" + (total === 1 ? "" : "s") +
      " finished";
  }
  showProgress();

  // -- the run tree, server-rendered: fetched again when runs start or end, one fetch at a
  // time (a change seen meanwhile fetches once more afterwards) --------------------------
  var fetching = false;
  var stale = false;
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
        var links = runs.querySelectorAll(".run-link");
        for (var i = 0; i < links.length; i++) {
          names[links[i].dataset.run] = links[i].textContent;
        }
        tick();
      }
    }).catch(function () {}).then(function () {
      fetching = false;
      if (stale) {
        stale = false;
        refreshRuns();
      }
    });
  }

  var source = new EventSource("/api/tasks/" + encodeURIComponent(log.dataset.task) +
    "/events?after=" + encodeURIComponent(log.dataset.after));
  source.addEventListener("status", function (event) {
    var data = JSON.parse(event.data);
    status.textContent = data.status;
    status.className = "status " + data.status;
    jobProgress = data.progress;
    showProgress();
    var elapsed = document.getElementById("elapsed");
    if (data.status === "running" && !elapsed.dataset.started) {
      elapsed.dataset.started = new Date().toISOString();  // it started as the page looked
    }
  });
  source.addEventListener("runs", function (event) {
    var data = JSON.parse(event.data);
    count.dataset.total = data.runs;
    count.dataset.finished = data.finished;
    showProgress();
    refreshRuns();
  });
  var tail = document.getElementById("log-tail");
  source.addEventListener("log", function (event) {
    var row = JSON.parse(event.data);
    var runId = row.run_id === null ? "" : String(row.run_id);
    var line = document.createElement("div");
    var note = row.stream === "job" && noteLine.test(row.text);
    line.className = "line " + (errorLine.test(row.text) ? "error" : note ? "note" : "output");
    line.dataset.run = runId;
    var time = document.createElement("time");
    time.dateTime = row.ts;
    time.textContent = row.ts.slice(11, 19);  // UTC, as the page's own lines
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = runId ? (names[runId] || "run " + runId) : note ? "levrt" : "workflow";
    who.title = who.textContent;
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = row.text;  // text, never HTML: log lines are the tool's output
    line.append(time, who, text);
    line.hidden = shownRun !== null && runId !== shownRun;
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(line);
    if (atBottom) {
      log.scrollTop = log.scrollHeight;
    }
    if (tail) {
      var lines = (tail.textContent + row.text + "\n").split("\n");
      tail.textContent = lines.slice(-6).join("\n");
    }
  });
  source.addEventListener("end", function () {
    source.close();
    window.location.reload();
  });
})();
