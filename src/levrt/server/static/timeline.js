// The task page's timeline: while the task runs, the server's drawing is fetched again every
// few seconds (running bars grow, new runs appear); one fetch at a time, none while the
// page is hidden. tasklog.js reloads the page when the task ends.
(function () {
  "use strict";
  var box = document.getElementById("timeline");
  if (!box || box.dataset.live !== "yes" || !window.fetch) {
    return;
  }
  var fetching = false;
  setInterval(function () {
    if (fetching || document.hidden) {
      return;
    }
    fetching = true;
    fetch(box.dataset.src, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        return response.ok ? response.text() : null;
      }).then(function (svg) {
        // The server's own SVG, its texts escaped there (levrt.server.timeline).
        if (svg !== null && svg.lastIndexOf("<svg", 0) === 0) {
          box.innerHTML = svg;
        }
      }).catch(function () {}).then(function () {
        fetching = false;
      });
  }, 2000);
})();
