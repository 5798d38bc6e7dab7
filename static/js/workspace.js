// The labelling page's keyboard and small behaviours. Plain JavaScript, no build step.
// Labels on digits, categories on letters, commands on Alt or Ctrl (DESIGN section 8),
// so a hotkey never clashes with typing: letters and digits are ignored in text fields,
// and a text field only has the focus when the annotator put it there (Alt+O, Alt+C,
// a click); after every swap the focus goes back to the form.
(function () {
  "use strict";

  var shownAt = performance.now();
  var IDLE_RESET_MS = 5 * 60 * 1000; // a pause this long counts as a break
  var workStart = null;
  var lastActivity = Date.now();

  function $(selector, root) { return (root || document).querySelector(selector); }
  function workspace() { return $("#workspace"); }
  function form() { return $("#vote-form"); }
  function openDialog() { return $("dialog[open]"); }
  function overlayOpen() {
    return Array.prototype.some.call(document.querySelectorAll(".overlay"), function (o) { return !o.hidden; });
  }
  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    return tag === "input" && ["text", "search", "email", "number", "password"].indexOf(target.type) !== -1;
  }

  function clearToasts() {
    var box = $("#toasts");
    if (box) box.querySelectorAll(".toast").forEach(function (t) { t.remove(); });
  }

  function toast(message, level) {
    var box = $("#toasts");
    if (!box) return;
    // One result at a time: a new one replaces the old, so "Saved." never stands
    // beside "not saved".
    clearToasts();
    var el = document.createElement("div");
    el.className = "toast " + (level || "success");
    el.textContent = message; // never HTML: messages may quote dialogue text
    box.appendChild(el);
    el.addEventListener("click", function () { el.remove(); });
    if (level !== "error") setTimeout(function () { el.remove(); }, 2500);
  }

  function submitVote() {
    var f = form();
    if (!f) return;
    if (typeof f.requestSubmit === "function") f.requestSubmit(); else f.submit();
  }

  function toggle(input) {
    if (input.type === "radio") { input.checked = true; }
    else { input.checked = !input.checked; }
    input.dispatchEvent(new Event("change", { bubbles: true }));
    // Ticking Other does not move into its text box: the next letter may be another
    // category. The box shows that it wants text (app.css); Alt+O enters it.
  }

  // Where the focus goes after a swap (next dialogue, undo, edit, a refused vote):
  // the first error, else the form, never a text field. htmx puts the focus back
  // into an element with the old one's id, and the Other box would take letters.
  function settleFocus() {
    var ws = workspace();
    if (!ws) return;
    var target = $("#vote-form .form-errors") || form() || ws;
    if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: !target.classList.contains("form-errors") });
  }

  function showDialog(id) {
    var dialog = document.getElementById(id);
    if (!dialog || typeof dialog.showModal !== "function") return;
    dialog.showModal();
    var field = dialog.querySelector("input[type=text]");
    if (field && id === "skip-dialog") field.focus();
    else dialog.querySelector("button[type=submit]").focus();
  }

  function toggleHidden(id, show) {
    var el = document.getElementById(id);
    if (!el) return;
    el.hidden = show === undefined ? !el.hidden : !show;
    if (!el.hidden) {
      var button = el.querySelector("button");
      if (button) button.focus();
    }
  }

  function reveal() {
    var ws = workspace();
    if (ws) ws.classList.add("revealed");
  }

  function undo() {
    var link = $('[data-action="undo"]');
    if (!link) return;
    // Ask directly rather than clicking: a link swapped in a moment ago may not be
    // wired by htmx yet, and the key press must not be lost.
    if (window.htmx) window.htmx.ajax("GET", link.href, { target: "#workspace", swap: "outerHTML" });
    else window.location = link.href;
  }

  function closeEverything() {
    var dialog = openDialog();
    if (dialog) { dialog.close(); return true; }
    var closed = false;
    ["help-overlay", "break-overlay", "guidelines"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el && !el.hidden) {
        el.hidden = true;
        closed = true;
        if (id === "break-overlay") workStart = null;
      }
    });
    return closed;
  }

  var ALT_COMMANDS = {
    KeyS: function () { if ($("#skip-dialog")) showDialog("skip-dialog"); },
    KeyF: function () { if ($("#flag-dialog")) showDialog("flag-dialog"); },
    KeyU: undo,
    KeyG: function () { toggleHidden("guidelines"); },
    KeyR: reveal,
    KeyC: function () { var c = $("#comment"); if (c) c.focus(); },
    KeyO: function () { var o = $("#other-text"); if (o) o.focus(); },
  };

  document.addEventListener("keydown", function (e) {
    lastActivity = Date.now();
    if (workStart === null) workStart = Date.now();
    var target = e.target;

    if (e.key === "Escape") {
      if (closeEverything()) { e.preventDefault(); return; }
      if (typing(target)) { target.blur(); e.preventDefault(); }
      return;
    }
    var breakBox = document.getElementById("break-overlay");
    if (breakBox && !breakBox.hidden) {
      if (e.key === "Enter") { e.preventDefault(); breakBox.hidden = true; workStart = null; }
      return;
    }
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      if (!openDialog()) { e.preventDefault(); submitVote(); }
      return;
    }
    if (e.altKey && !e.ctrlKey && !e.metaKey && ALT_COMMANDS[e.code]) {
      if (openDialog()) return;
      e.preventDefault();
      ALT_COMMANDS[e.code]();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(target)) return;

    var dialog = openDialog();
    if (dialog) {
      var reason = dialog.querySelector('[data-flag-key="' + e.key + '"]');
      if (reason) { e.preventDefault(); reason.checked = true; }
      return;
    }
    if (e.key === "?") { e.preventDefault(); toggleHidden("help-overlay"); return; }
    if (overlayOpen()) return;
    var f = form();
    if (!f) return;
    var key = e.key.length === 1 ? e.key.toLowerCase() : "";
    if (!key) return;
    var input = f.querySelector('input[data-hotkey="' + key + '"]');
    if (input) { e.preventDefault(); toggle(input); }
  });

  document.addEventListener("click", function (e) {
    lastActivity = Date.now();
    var trigger = e.target.closest ? e.target.closest("[data-action]") : null;
    if (!trigger) {
      if (e.target.closest && e.target.closest(".blur-on .dialogue-text")) reveal();
      return;
    }
    var action = trigger.dataset.action;
    if (action === "skip") showDialog("skip-dialog");
    else if (action === "flag") showDialog("flag-dialog");
    else if (action === "help") toggleHidden("help-overlay");
    else if (action === "guidelines") toggleHidden("guidelines");
    else if (action === "reveal") reveal();
    else if (action === "close") { var d = trigger.closest("dialog"); if (d) d.close(); }
    else if (action === "break-done") { toggleHidden("break-overlay", false); workStart = null; }
  });

  // The time spent on a dialogue rides with the vote.
  document.addEventListener("submit", function (e) {
    var field = e.target.querySelector && e.target.querySelector('input[name="time_spent_ms"]');
    if (field) field.value = String(Math.round(performance.now() - shownAt));
  }, true);

  function isWorkspaceSwap(e) {
    return e.detail && e.detail.target && e.detail.target.id === "workspace";
  }
  // A new action's result replaces the last one's toast (its own toast, if any,
  // arrives with the response).
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (isWorkspaceSwap(e)) clearToasts();
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (!isWorkspaceSwap(e)) return;
    shownAt = performance.now();
    // (An open skip or flag dialog left with the old fragment; never close one here:
    // the annotator may already have opened the new fragment's.)
    settleFocus();
  });

  document.body.addEventListener("toast", function (e) {
    toast(e.detail.message, e.detail.level);
  });
  document.addEventListener("htmx:responseError", function (e) {
    toast("The server could not save that (" + e.detail.xhr.status + "). Your work is still on the page; try again.", "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("No connection to the server. Your work is still on the page; try again.", "error");
  });

  // Break reminder: after the batch's minutes of continuous work (no 5-minute pause).
  setInterval(function () {
    var now = Date.now();
    if (now - lastActivity > IDLE_RESET_MS) { workStart = null; return; }
    var ws = workspace();
    var minutes = ws ? parseInt(ws.dataset.breakMinutes || "0", 10) : 0;
    if (!minutes || workStart === null) return;
    if (now - workStart >= minutes * 60 * 1000) {
      var box = document.getElementById("break-overlay");
      if (box && box.hidden) {
        var elapsed = box.querySelector("[data-break-elapsed]");
        if (elapsed) elapsed.textContent = String(Math.round((now - workStart) / 60000));
        box.hidden = false;
        box.querySelector("button").focus();
      }
    }
  }, 15 * 1000);
})();
