// Tables of rows (levrt.rows): a click on a column's head sorts by it (again: the other
// way; numbers as numbers), the box above a table hides the rows that do not hold its text.
// On the task page it first fetches the tables (#rows[data-src]), and again once the task
// has ended. Plain script.
(function () {
  "use strict";

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) {
      return "";
    }
    return cell.dataset.sort !== undefined ? Number(cell.dataset.sort) : cell.textContent;
  }

  function sortBy(table, index, head) {
    var body = table.tBodies[0];
    var down = head.dataset.order !== "up";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      delete th.dataset.order;
    });
    head.dataset.order = down ? "up" : "down";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index);
      var y = cellValue(b, index);
      var order = typeof x === "number" && typeof y === "number" ? x - y
        : String(x).localeCompare(String(y), undefined, {numeric: true});
      return down ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function filter(box) {
    var needle = box.value.trim().toLowerCase();
    var table = box.parentNode.querySelector("table");
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) < 0;
    });
  }

  document.addEventListener("click", function (event) {
    var head = event.target.closest ? event.target.closest("table.rows-table thead th") : null;
    if (head) {
      sortBy(head.closest("table"), head.cellIndex, head);
    }
  });
  document.addEventListener("input", function (event) {
    if (event.target.classList && event.target.classList.contains("rows-filter")) {
      filter(event.target);
    }
  });

  var section = document.getElementById("rows");
  if (!section || !section.dataset.src) {
    return;
  }
  function load() {
    fetch(section.dataset.src, {credentials: "same-origin"}).then(function (answer) {
      return answer.ok ? answer.text() : Promise.reject(answer.status);
    }).then(function (html) {
      section.innerHTML = html;
      section.dataset.loaded = "yes";
    }, function () {});
  }
  load();
  if (section.dataset.final !== "yes") {
    // tasklog.js writes the task's status here as it changes; rows come with its end.
    var status = document.getElementById("status");
    var watch = new MutationObserver(function () {
      if (["done", "failed", "cancelled"].indexOf(status.textContent.trim()) >= 0) {
        watch.disconnect();
        load();
      }
    });
    if (status) {
      watch.observe(status, {childList: true, characterData: true, subtree: true});
    }
  }
})();
