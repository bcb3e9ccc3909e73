// The task list refreshes its rows while one of them is queued or running: the same page
// is fetched again every few seconds and its table replaces this one. Plain script.
(function () {
  "use strict";
  var rows = document.getElementById("task-rows");
  if (!rows) return;
  function unfinished() {
    return rows.querySelector("tr[data-status=queued], tr[data-status=running]") !== null;
  }
  function refresh() {
    if (!unfinished()) return;
    fetch(window.location.href, {credentials: "same-origin"}).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      var fresh = html && new DOMParser().parseFromString(html, "text/html")
        .getElementById("task-rows");
      if (fresh) rows.innerHTML = fresh.innerHTML;
    }).catch(function () {}).then(function () {
      setTimeout(refresh, 3000);
    });
  }
  setTimeout(refresh, 3000);
})();
