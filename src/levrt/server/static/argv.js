// The Customized tab's argv editor: one text field per argument, rows added and removed. A
// command line pasted into a row is split into arguments by shell rules (quotes, backslash),
// a preview shows the final command line with the tool's name in front, and an argument
// with spaces is flagged: it reaches the tool as one argument. Without this script the form
// still works: its text area takes one argument per line.
(function () {
  "use strict";
  var area = document.querySelector("textarea[data-argv-editor]");
  if (!area) return;
  var list = document.createElement("ol");
  list.className = "argv-rows";
  var preview = document.createElement("pre");
  preview.id = "argv-preview";
  preview.className = "command";

  // Shell words of a line, as POSIX sh (and Python's shlex) split them.
  function shellSplit(line) {
    var words = [], word = null, quote = null;
    for (var i = 0; i < line.length; i++) {
      var c = line[i];
      if (quote === "'") {
        if (c === "'") quote = null; else word += c;
      } else if (quote === '"') {
        if (c === '"') quote = null;
        else if (c === "\\" && i + 1 < line.length && '"\\$`'.indexOf(line[i + 1]) >= 0) word += line[++i];
        else word += c;
      } else if (/\s/.test(c)) {
        if (word !== null) { words.push(word); word = null; }
      } else {
        if (word === null) word = "";
        if (c === "'" || c === '"') quote = c;
        else if (c === "\\" && i + 1 < line.length) word += line[++i];
        else word += c;
      }
    }
    if (word !== null) words.push(word);
    return words;
  }

  function shellQuote(word) {
    return /^[A-Za-z0-9_@%+=:,.\/-]+$/.test(word) ? word : "'" + word.replace(/'/g, "'\\''") + "'";
  }

  function update() {
    var words = [area.dataset.tool || "tool"];
    var rows = list.querySelectorAll("li");
    for (var i = 0; i < rows.length; i++) {
      var value = rows[i].querySelector("input").value;
      rows[i].classList.toggle("spaced", /\s/.test(value));
      if (value.trim()) words.push(shellQuote(value));
    }
    preview.textContent = words.join(" ");
  }

  function addRow(value, after) {
    var item = document.createElement("li");
    var input = document.createElement("input");
    input.type = "text";
    input.name = "c_argv";
    input.value = value;
    input.setAttribute("aria-label", "argument");
    input.addEventListener("input", update);
    input.addEventListener("paste", function (event) {
      var text = (event.clipboardData || window.clipboardData).getData("text");
      var words = shellSplit(text);
      if (words.length < 2) return;
      event.preventDefault();
      input.value = input.value + words[0];
      var last = item;
      for (var i = 1; i < words.length; i++) last = addRow(words[i], last).closest("li");
      update();
    });
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small";
    remove.textContent = "Remove";
    remove.addEventListener("click", function () { item.remove(); update(); });
    var warning = document.createElement("small");
    warning.className = "warning";
    warning.textContent = "has spaces: the tool gets it as one argument";
    item.append(input, remove, warning);
    if (after) after.after(item); else list.append(item);
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
  add.addEventListener("click", function () { addRow("").focus(); update(); });
  var label = document.createElement("small");
  label.textContent = "command line";
  // A disabled text area is not submitted: the rows (c_argv) are.
  area.disabled = true;
  area.hidden = true;
  area.after(list, add, label, preview);
  var hint = document.getElementById("c_argv-hint");
  if (hint) hint.textContent = "one argument per row, as it reaches the tool (no shell); " +
    "a command line pasted into a row is split into arguments";
  update();
})();
