// The audit review page's keys: j next item, k previous (never while typing).
(function () {
  "use strict";
  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "textarea" || tag === "select" || (tag === "input" && ["radio", "checkbox", "submit", "button"].indexOf(target.type) === -1);
  }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) return;
    var nav = { j: "next", k: "prev" }[e.key];
    if (!nav) return;
    var link = document.querySelector('[data-nav="' + nav + '"]');
    if (link) { e.preventDefault(); link.click(); }
  });
})();
