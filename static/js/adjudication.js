// The adjudication pages' keyboard and small behaviours. Plain JavaScript, no build step.
// As in the workspace (DESIGN section 8): labels on digits, categories on letters,
// commands on Alt or Ctrl, so a hotkey never clashes with typing.
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function form() { return $("#decision-form"); }
  function help() { return document.getElementById("help-overlay"); }
  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    return tag === "input" && ["text", "search", "email", "number", "password"].indexOf(target.type) !== -1;
  }

  function toggleHelp(show) {
    var box = help();
    if (!box) return;
    box.hidden = show === undefined ? !box.hidden : !show;
    if (!box.hidden) { var button = box.querySelector("button"); if (button) button.focus(); }
  }

  function submitDecision() {
    var f = form();
    if (!f) return;
    if (typeof f.requestSubmit === "function") f.requestSubmit(); else f.submit();
  }

  function follow(action) {
    // Links and buttons are clicked, so each works the same with or without keys.
    var el = $('[data-action="' + action + '"]');
    if (el) el.click();
  }

  function toggle(input) {
    if (input.type === "radio") input.checked = true;
    else input.checked = !input.checked;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  var ALT_COMMANDS = {
    KeyN: function () { follow("next"); },
    KeyR: function () { follow("reopen"); },
    KeyH: function () { follow("names"); },
    KeyE: function () { var r = $("#reason"); if (r) r.focus(); },
    KeyC: function () { var n = $("#note"); if (n) n.focus(); },
    KeyU: function () { var g = $("#guideline-update"); if (g) toggle(g); },
  };

  document.addEventListener("keydown", function (e) {
    var target = e.target;
    var box = help();
    if (e.key === "Escape") {
      if (box && !box.hidden) { toggleHelp(false); e.preventDefault(); return; }
      if (typing(target)) { target.blur(); e.preventDefault(); }
      return;
    }
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      if (form()) { e.preventDefault(); submitDecision(); }
      return;
    }
    // e.code, not e.key: Alt+letter types another character on some layouts.
    if (e.altKey && !e.ctrlKey && !e.metaKey && ALT_COMMANDS[e.code]) {
      e.preventDefault();
      ALT_COMMANDS[e.code]();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(target)) return;
    if (e.key === "?") { e.preventDefault(); toggleHelp(); return; }
    if (box && !box.hidden) return;
    var f = form();
    if (!f) return;
    var key = e.key.length === 1 ? e.key.toLowerCase() : "";
    if (!key) return;
    var input = f.querySelector('input[data-hotkey="' + key + '"]');
    if (input) { e.preventDefault(); toggle(input); }
  });

  document.addEventListener("click", function (e) {
    var trigger = e.target.closest ? e.target.closest('[data-action="help"]') : null;
    if (trigger) toggleHelp();
  });

  // A bulk action says what it will do before it does it.
  document.addEventListener("submit", function (e) {
    var message = e.target.dataset ? e.target.dataset.confirm : "";
    if (message && !window.confirm(message)) e.preventDefault();
  }, true);

  // The control of a field whose errors are in `box`: the checked radio of its
  // group, else its first input, or its select. Never a text field: letters typed
  // there would not be keys any more (the note keeps its text; Alt+C enters it).
  function controlOf(box) {
    var holder = box.closest("fieldset") || box.closest(".field");
    if (!holder) return null;
    var control = holder.querySelector("input:checked") || holder.querySelector("input, select");
    if (!control) return null;
    if (control.tagName === "SELECT") return control;
    return typing(control) ? null : control;
  }

  // A refused decision: the page goes to the first field in error (the reason may be
  // below the fold) and focuses it; the message at the top is an alert a screen
  // reader reads at once. A conflict has no field: its message gets the focus.
  document.addEventListener("DOMContentLoaded", function () {
    var f = form();
    var problem = $("#decision-form .form-errors");
    if (!f || !problem) return;
    var first = Array.prototype.find.call(
      f.querySelectorAll(".field-errors"), function (box) { return box.textContent.trim() !== ""; });
    var control = first ? controlOf(first) : null;
    var target = control || problem;
    if (!control) target.setAttribute("tabindex", "-1");
    target.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
    var field = first && (first.closest(".field") || first.closest("fieldset"));
    if (field) field.classList.add("has-error");
  });
})();
