// The Customized tab's argv editor: one text field per argument, rows added and removed.
// Without this script the form still works: its text area takes one argument per line.
(function () {
  "use strict";
  var area = document.querySelector("textarea[data-argv-editor]");
  if (!area) return;
  var list = document.createElement("ol");
  list.className = "argv-rows";

  function addRow(value) {
    var item = document.createElement("li");
    var input = document.createElement("input");
    input.type = "text";
    input.name = "c_argv";
    input.value = value;
    input.setAttribute("aria-label", "argument");
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small";
    remove.textContent = "Remove";
    remove.addEventListener("click", function () { item.remove(); });
    item.append(input, remove);
    list.append(item);
    return input;
  }

  area.value.split(/\r?\n/).forEach(function (line) {
    if (line.trim()) addRow(line);
  });
  if (!list.children.length) addRow("");
  var add = document.createElement("button");
  add.type = "button";
  add.className = "small";
  add.textContent = "Add argument";
  add.addEventListener("click", function () { addRow("").focus(); });
  // A disabled text area is not submitted: the rows (c_argv) are.
  area.disabled = true;
  area.hidden = true;
  area.after(list, add);
  var hint = document.getElementById("c_argv-hint");
  if (hint) hint.textContent = "one argument per row, as it reaches the tool (no shell)";
})();
