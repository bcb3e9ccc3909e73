// On every page: a form with data-confirm asks first (Cancel, Revoke); a button with
// data-copy copies the text of the element it names (a new token); one with data-fill puts
// its data-value into the field it names (a parameter's example); a table row with
// data-href opens it (a task). Plain script.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var question = event.target.dataset ? event.target.dataset.confirm : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target;
    var row = button.closest ? button.closest("tr[data-href]") : null;
    if (row && !button.closest("a, button, input")) {
      window.location.href = row.dataset.href;
      return;
    }
    if (button.dataset && button.dataset.fill) {
      var field = document.getElementById(button.dataset.fill);
      field.value = button.dataset.value;
      field.dispatchEvent(new Event("input", {bubbles: true}));
      field.focus();
      return;
    }
    if (!button.dataset || !button.dataset.copy) {
      return;
    }
    var text = document.getElementById(button.dataset.copy).textContent;
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      // Plain http on another host than localhost: no clipboard API; select it instead.
      var range = document.createRange();
      range.selectNodeContents(document.getElementById(button.dataset.copy));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      if (document.execCommand("copy")) {
        done();
      }
    }
  });
})();
