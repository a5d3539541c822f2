// Filter the experts cards as you type. Every term must appear in the service's own text
// (name, aliases, description) or in one expert's row; a card whose own text matches keeps
// all its people. Reads #q=... or ?q=... on load so links and tests can carry a search.
(function () {
  "use strict";
  var box = document.getElementById("q");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".service"));
  var shown = document.getElementById("shown");
  var nomatch = document.getElementById("nomatch");

  function terms(q) {
    return q.toLowerCase().split(/\s+/).filter(function (t) { return t.length > 0; });
  }
  function all(words, text) {
    return words.every(function (t) { return text.indexOf(t) !== -1; });
  }
  function apply(q) {
    var words = terms(q);
    var visible = 0;
    cards.forEach(function (card) {
      var own = card.getAttribute("data-text") || "";
      var any = false;
      card.querySelectorAll("tr.expert").forEach(function (row) {
        var match = all(words, own + " " + (row.getAttribute("data-text") || ""));
        row.hidden = !match;
        any = any || match;
      });
      card.hidden = !any;
      if (any) { visible += 1; }
    });
    shown.textContent = words.length ? visible + " of " + cards.length + " services"
                                     : cards.length + " services";
    nomatch.hidden = visible > 0;
  }
  function fromUrl() {
    var m = /[#&?]q=([^&]*)/.exec(location.hash) || /[?&]q=([^&]*)/.exec(location.search);
    if (!m) { return null; }
    try { return decodeURIComponent(m[1].replace(/\+/g, " ")); } catch (e) { return m[1]; }
  }
  function load() {
    var q = fromUrl();
    if (q !== null) { box.value = q; }
    apply(box.value);
  }
  box.addEventListener("input", function () {
    apply(box.value);
    try {
      history.replaceState(null, "", box.value ? "#q=" + encodeURIComponent(box.value)
                                               : location.pathname + location.search);
    } catch (e) { /* some browsers refuse on file://; the filter still works */ }
  });
  window.addEventListener("hashchange", function () {
    if (/^#q=/.test(location.hash)) { load(); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "/" && document.activeElement !== box) { ev.preventDefault(); box.focus(); }
    if (ev.key === "Escape" && document.activeElement === box) { box.value = ""; box.dispatchEvent(new Event("input")); }
  });
  load();
}());
