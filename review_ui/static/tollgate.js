// Tollgate review UI: keyboard shortcuts for the queue. No inline scripts (the CSP forbids them).
// j / k move the selection, Enter opens the selected case, c claims the next case.
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#cases tbody tr[data-href]"));
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function select(all, index) {
    all.forEach(function (row) { row.classList.remove("selected"); row.removeAttribute("aria-selected"); });
    var row = all[index];
    if (!row) return;
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    row.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var all = rows();
    var current = all.findIndex(function (row) { return row.classList.contains("selected"); });
    if (event.key === "j" || event.key === "k") {
      if (!all.length) return;
      var next = current < 0 ? 0 : current + (event.key === "j" ? 1 : -1);
      select(all, Math.max(0, Math.min(all.length - 1, next)));
      event.preventDefault();
    } else if (event.key === "Enter" && current >= 0 && event.target === document.body) {
      window.location.assign(all[current].getAttribute("data-href"));
      event.preventDefault();
    } else if (event.key === "c") {
      var claim = document.getElementById("claim-next");
      if (claim) {
        claim.click();
        event.preventDefault();
      }
    }
  });
})();
