// Keeps the SLA countdowns ticking and marks rows overdue as their time passes.
// The server renders the same text first, so pages read correctly without script.
(function () {
  "use strict";
  var body = document.body;
  var fmtHM = body.getAttribute("data-fmt-hm") || "%(h)dh %(m)02dm";
  var fmtDH = body.getAttribute("data-fmt-dh") || "%(d)dd %(h)dh";
  var fmtOverdue = body.getAttribute("data-fmt-overdue") || "overdue %(time)s";

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function text(seconds) {
    var total = Math.floor(Math.abs(seconds) / 60);
    var days = Math.floor(total / 1440);
    var hours = Math.floor((total % 1440) / 60);
    var minutes = total % 60;
    var out = days
      ? fmtDH.replace("%(d)d", String(days)).replace("%(h)d", String(hours))
      : fmtHM.replace("%(h)d", String(hours)).replace("%(m)02d", pad(minutes));
    return seconds < 0 ? fmtOverdue.replace("%(time)s", out) : out;
  }

  function tick() {
    var now = Date.now();
    var nodes = document.querySelectorAll(".countdown[data-due]");
    for (var i = 0; i < nodes.length; i++) {
      var due = Date.parse(nodes[i].getAttribute("data-due"));
      if (isNaN(due)) { continue; }
      var seconds = (due - now) / 1000;
      nodes[i].textContent = text(seconds);
      if (seconds < 0) {
        nodes[i].classList.add("overdue");
        var row = nodes[i].closest("tr");
        if (row) { row.classList.add("overdue"); }
      }
    }
  }

  tick();
  setInterval(tick, 1000);

  // "All on this page" on the supervisor desk: ticks every task checkbox of the bulk form.
  var all = document.querySelectorAll("input[data-select-all]");
  for (var j = 0; j < all.length; j++) {
    all[j].addEventListener("change", function (ev) {
      var name = ev.target.getAttribute("data-select-all");
      var boxes = document.querySelectorAll("input[type=checkbox][name='" + name + "']");
      for (var k = 0; k < boxes.length; k++) { boxes[k].checked = ev.target.checked; }
    });
  }

  // A closing outcome is asked once more in a dialog of the page (the server asks the same question
  // as a page of its own without script, which the back button would offer to send again).
  var dialog = document.getElementById("confirm-dialog");
  var form = document.querySelector("form[data-testid=complete-form]");
  if (dialog && form && typeof dialog.showModal === "function") {
    var chosen = null;
    form.addEventListener("submit", function (ev) {
      var button = ev.submitter;
      if (!button || button.getAttribute("data-closing") !== "1") { return; }
      ev.preventDefault();
      chosen = button.value;
      dialog.querySelector("#confirm-dialog-question strong").textContent = button.getAttribute("data-question");
      var notes = dialog.querySelector(".notes");
      var typed = form.querySelector("textarea[name=notes]");
      notes.textContent = typed ? typed.value : "";
      notes.hidden = !notes.textContent;
      dialog.showModal();
    });
    dialog.addEventListener("click", function (ev) {
      var answer = ev.target.getAttribute && ev.target.getAttribute("data-answer");
      if (answer === "no") { dialog.close(); return; }
      if (answer !== "yes" || chosen === null) { return; }
      var fields = { outcome: chosen, confirmed: "1" };
      for (var name in fields) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = fields[name];
        form.appendChild(input);
      }
      ev.target.disabled = true;  // one click, one outcome
      form.submit();
    });
  }
})();
