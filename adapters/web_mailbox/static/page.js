// The citizen page's checks as the citizen types, with the server's own messages (read
// from the page's data attributes); the server checks everything again. Without this
// file the form still works: the server answers with the same messages beside each field.
"use strict";
(function () {
  function show(field, message) {
    var error = document.getElementById("err-" + field.name);
    if (!error) { return; }
    error.textContent = "";
    if (message) {
      error.appendChild(document.createTextNode(message[0] + " "));
      var en = document.createElement("span");
      en.lang = "en";
      en.textContent = message[1];
      error.appendChild(en);
      field.setAttribute("aria-invalid", "true");
    } else {
      field.removeAttribute("aria-invalid");
    }
  }

  function textProblem(field, form, sending) {
    var messages = JSON.parse(field.dataset.messages || "{}");
    var value = field.value.trim();
    if (!value && messages.required) { return messages.required; }
    if (Array.from(value).length > Number(field.dataset.max)) { return messages.too_long; }
    if (value && field.dataset.pattern && !new RegExp(field.dataset.pattern).test(value)) {
      return messages.invalid_email;
    }
    // Phone or e-mail is asked only on sending: leaving the phone box empty on the way
    // to the e-mail box is no mistake yet.
    if (sending && field.name === "phone" && !value && !form.elements.email.value.trim()
        && !document.getElementById("f-anonymous").checked) {
      return messages.contact_required;
    }
    return null;
  }

  function fileProblem(field) {
    var rules = JSON.parse(field.dataset.rules);
    var files = Array.from(field.files || []);
    if (files.length > rules.max_files) { return rules.messages.too_many_files; }
    for (var i = 0; i < files.length; i++) {
      if (files[i].size > rules.max_bytes) { return rules.messages.file_too_large; }
      var type = files[i].type || "application/octet-stream";
      if (rules.types.indexOf(type) < 0) {
        return rules.messages.media_type_not_allowed.map(function (m) {
          return m.replace("{type}", type);
        });
      }
    }
    return null;
  }

  function check(field, form, sending) {
    var problem = field.type === "file" ? fileProblem(field) : textProblem(field, form, sending);
    show(field, problem);
    return !problem;
  }

  function setUpForm(form) {
    form.noValidate = true; // our messages, in both languages, instead of the browser's
    var fields = Array.from(form.querySelectorAll("[data-messages], [data-rules]"));
    fields.forEach(function (field) {
      field.addEventListener(field.type === "file" ? "change" : "blur", function () {
        check(field, form, false);
      });
    });
    form.addEventListener("submit", function (event) {
      var bad = fields.filter(function (field) { return !check(field, form, true); });
      if (bad.length) {
        event.preventDefault();
        bad[0].focus();
        return;
      }
      document.getElementById("send").disabled = true; // one click, one letter
    });
    var summary = document.getElementById("summary");
    if (summary && !summary.hidden) { summary.focus(); }
  }

  function setUpCopy(button) {
    var code = document.getElementById("case-code").textContent.trim();
    var said = document.getElementById("copied");
    button.hidden = false;
    button.addEventListener("click", function () {
      function done() { said.textContent = "已复制 Copied"; }
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(code).then(done, function () { select(); });
      } else {
        select();
      }
      function select() {
        var range = document.createRange();
        range.selectNodeContents(document.getElementById("case-code"));
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        said.textContent = "已选中，请长按复制 Selected: copy it";
      }
    });
  }

  var form = document.getElementById("mailbox");
  if (form) { setUpForm(form); }
  var copy = document.getElementById("copy");
  if (copy) { setUpCopy(copy); }
})();
